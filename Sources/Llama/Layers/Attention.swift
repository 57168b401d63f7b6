// Causal multi-head attention with grouped-query heads over a KV cache.
//
//   score[h, t, s] = q[t, h] . k[s, kvh(h)] / sqrt(D)      for s <= pos(t)
//   p = softmax_s(score);  out[t, h] = sum_s p[h, t, s] * v[s, kvh(h)]
//   kvh(h) = h / (H / Hkv)

/// Attention for `T` new rows whose keys/values are already in the cache at positions
/// `pos0 ..< pos0 + T`; row t attends to cache positions `0 ... pos0 + t`.
/// - Parameters:
///   - out: (T, H, D) output.
///   - probs: (T, H, S) saved attention probabilities for the backward pass (S = pos0 + T), or nil.
///   - q: (T, H, D) queries (already rotated).
///   - kCache, vCache: (S, Hkv, D) keys (rotated) and values of this layer.
///   - heads: the query heads to compute (callers split heads across threads).
///   - scratch: at least S floats.
func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                      q: UnsafePointer<Float>, kCache: UnsafePointer<Float>, vCache: UnsafePointer<Float>,
                      T: Int, pos0: Int, H: Int, Hkv: Int, D: Int, heads: Range<Int>,
                      scratch: UnsafeMutablePointer<Float>) {
    let group = H / Hkv
    let scale = 1 / Float(D).squareRoot()
    let S = pos0 + T
    for t in 0 ..< T {
        let visible = pos0 + t + 1
        for h in heads {
            let kvh = h / group
            let qv = q + (t * H + h) * D
            var maxScore = -Float.infinity
            for s in 0 ..< visible {
                let kv = kCache + (s * Hkv + kvh) * D
                var dot: Float = 0
                for d in 0 ..< D { dot += qv[d] * kv[d] }
                let score = dot * scale
                scratch[s] = score
                maxScore = max(maxScore, score)
            }
            var sum: Double = 0
            for s in 0 ..< visible {
                let e = expf(scratch[s] - maxScore)
                scratch[s] = e
                sum += Double(e)
            }
            let inv = Float(1 / sum)
            let o = out + (t * H + h) * D
            for d in 0 ..< D { o[d] = 0 }
            for s in 0 ..< visible {
                let p = scratch[s] * inv
                if let probs { probs[(t * H + h) * S + s] = p }
                let vv = vCache + (s * Hkv + kvh) * D
                for d in 0 ..< D { o[d] += p * vv[d] }
            }
            if let probs { for s in visible ..< S { probs[(t * H + h) * S + s] = 0 } }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
