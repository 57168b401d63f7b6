// Causal multi-head attention with grouped-query heads, forward and backward side by side.
//
// A segment is T consecutive rows of one sequence at positions prefix ..< prefix + T. Row t sees the
// `prefix` keys and values that precede the segment (a KV cache, a shared soft prompt's rows, or — the
// deep-prompt seam — per-layer prefixes supplied from outside), then the segment's own rows 0 ... t:
//
//   score[t, h, s] = q[t, h] · key[s, kvh(h)] / sqrt(D)      for s < prefix + t + 1
//   p = softmax_s(score);  out[t, h] = Σ_s p[t, h, s] value[s, kvh(h)]
//   kvh(h) = h / (H / Hkv);  key[s] = prefixK[s] for s < prefix, else k[s - prefix] (likewise values)
//
// Every caller — prefill, decoding, batched decoding, the training pass — runs these two functions, so
// inference and training give the same bits for the same rows.

/// Attention of query head `head` for one segment.
/// - Parameters:
///   - out: (T, H, D), head `head` written.
///   - probs: (T, H, S) saved probabilities for the backward pass, S = prefix + T, head `head` written
///     (zeros past each row's causal edge), or nil.
///   - q: (T, H, D) rotated queries; k, v: (T, Hkv, D) the segment's own rotated keys and values.
///   - prefixK, prefixV: (prefix, Hkv, D) the keys and values before the segment (any pointer when
///     `prefix` is 0).
///   - scratch: at least S floats.
func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>?,
                      q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                      prefixK: UnsafePointer<Float>, prefixV: UnsafePointer<Float>, prefix: Int, T: Int,
                      H: Int, Hkv: Int, D: Int, head: Int, scratch: UnsafeMutablePointer<Float>) {
    let kvh = head / (H / Hkv), KV = Hkv * D
    let scale = 1 / Float(D).squareRoot()
    let S = prefix + T
    for t in 0 ..< T {
        let visible = prefix + t + 1
        let qv = q + (t * H + head) * D
        var maxScore = -Float.infinity
        for s in 0 ..< visible {
            let kv = s < prefix ? prefixK + s * KV + kvh * D : k + (s - prefix) * KV + kvh * D
            var dot: Float = 0
            for d in 0 ..< D { dot += qv[d] * kv[d] }  // in order, as the float32 reference loop sums
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
        let o = out + (t * H + head) * D
        o.update(repeating: 0, count: D)
        let pr = probs.map { $0 + (t * H + head) * S }
        for s in 0 ..< visible {
            let p = scratch[s] * inv
            pr?[s] = p
            let vv = s < prefix ? prefixV + s * KV + kvh * D : v + (s - prefix) * KV + kvh * D
            axpyF32(o, vv, p, D)
        }
        if let pr { for s in visible ..< S { pr[s] = 0 } }
    }
}

/// Backward of `attentionForward` for the query group of KV head `kvHead`:
///
///   dv[s] += Σ_t p[t,s] dout[t];  dp[t,s] = dout[t] · v[s];  ds[t,s] = p[t,s] (dp[t,s] - Σ_s' p[t,s'] dp[t,s'])
///   dq[t] = scale Σ_s ds[t,s] k[s];  dk[s] += scale Σ_t ds[t,s] q[t]
/// - Parameters:
///   - dq: (T, H, D), the group's heads written.
///   - dk, dv: (T, Hkv, D) of the segment's own rows, head `kvHead` accumulated into.
///   - dPrefixK, dPrefixV: (prefix, Hkv, D) of the prefix rows, head `kvHead` accumulated into.
///   - dout: (T, H, D); probs: (T, H, S) as the forward saved them; the rest as in the forward.
///   - scratch: at least S floats.
func attentionBackward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                       dv: UnsafeMutablePointer<Float>, dPrefixK: UnsafeMutablePointer<Float>,
                       dPrefixV: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                       probs: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                       v: UnsafePointer<Float>, prefixK: UnsafePointer<Float>, prefixV: UnsafePointer<Float>,
                       prefix: Int, T: Int, H: Int, Hkv: Int, D: Int, kvHead kvh: Int,
                       scratch: UnsafeMutablePointer<Float>) {
    let group = H / Hkv, KV = Hkv * D
    let scale = 1 / Float(D).squareRoot()
    let S = prefix + T
    for h in kvh * group ..< (kvh + 1) * group {
        for t in 0 ..< T {
            let visible = prefix + t + 1
            let p = probs + (t * H + h) * S
            let go = dout + (t * H + h) * D
            let qv = q + (t * H + h) * D
            let gq = dq + (t * H + h) * D
            gq.update(repeating: 0, count: D)
            var correction: Double = 0
            for s in 0 ..< visible {
                let vv = s < prefix ? prefixV + s * KV + kvh * D : v + (s - prefix) * KV + kvh * D
                let dp = dotF32(go, vv, D)
                scratch[s] = dp
                correction += Double(p[s] * dp)
            }
            let c = Float(correction)
            for s in 0 ..< visible {
                let ps = p[s]
                let own = s >= prefix
                let row = (own ? (s - prefix) : s) * KV + kvh * D
                axpyF32((own ? dv : dPrefixV) + row, go, ps, D)
                let ds = ps * (scratch[s] - c) * scale
                if ds == 0 { continue }
                axpyF32(gq, (own ? k : prefixK) + row, ds, D)
                axpyF32((own ? dk : dPrefixK) + row, qv, ds, D)
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
