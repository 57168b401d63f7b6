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

/// Backward of `attentionForward` for a whole sequence starting at position 0 (pos0 = 0, S = T).
///
///   dv[s] += sum_t p[t,s] * dout[t]
///   dp[t,s] = dout[t] . v[s]
///   dscore[t,s] = p[t,s] * (dp[t,s] - sum_s' p[t,s'] * dp[t,s'])
///   dq[t] += scale * sum_s dscore[t,s] * k[s];   dk[s] += scale * sum_t dscore[t,s] * q[t]
/// - Parameters:
///   - dq: (T, H, D) written; dk, dv: (T, Hkv, D) accumulated into (several query heads share a KV head).
///   - dout: (T, H, D).
///   - probs: (T, H, T) saved by the forward.
///   - heads: the KV heads whose query group this call handles (callers split across threads by KV head,
///     so no two threads write the same dk/dv rows).
///   - scratch: at least T floats.
func attentionBackward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                       dout: UnsafePointer<Float>, probs: UnsafePointer<Float>, q: UnsafePointer<Float>,
                       k: UnsafePointer<Float>, v: UnsafePointer<Float>, T: Int, H: Int, Hkv: Int, D: Int,
                       kvHeads: Range<Int>, scratch: UnsafeMutablePointer<Float>) {
    let group = H / Hkv
    let scale = 1 / Float(D).squareRoot()
    for kvh in kvHeads {
        for h in kvh * group ..< (kvh + 1) * group {
            for t in 0 ..< T {
                let p = probs + (t * H + h) * T
                let go = dout + (t * H + h) * D
                let qv = q + (t * H + h) * D
                let gq = dq + (t * H + h) * D
                for d in 0 ..< D { gq[d] = 0 }
                // dp and the softmax correction term.
                var correction: Double = 0
                for s in 0 ... t {
                    let vv = v + (s * Hkv + kvh) * D
                    var dp: Float = 0
                    for d in 0 ..< D { dp += go[d] * vv[d] }
                    scratch[s] = dp
                    correction += Double(p[s] * dp)
                }
                let c = Float(correction)
                for s in 0 ... t {
                    let ps = p[s]
                    let gv = dv + (s * Hkv + kvh) * D
                    for d in 0 ..< D { gv[d] += ps * go[d] }
                    let ds = ps * (scratch[s] - c) * scale
                    if ds == 0 { continue }
                    let kv = k + (s * Hkv + kvh) * D
                    let gk = dk + (s * Hkv + kvh) * D
                    for d in 0 ..< D {
                        gq[d] += ds * kv[d]
                        gk[d] += ds * qv[d]
                    }
                }
            }
        }
    }
}
