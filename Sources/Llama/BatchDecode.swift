/// One decoding step for several independent sequences at once (continuous batching).
///
/// Each sequence is its own `InferenceSession` at its own position with its own KV cache (possibly
/// started from a different task's `PrefixKV`). The step stacks one new row per sequence into a
/// (B, C) matrix so that every weight matrix is read once per step for all of them: the projections,
/// the feed-forward block and the output head run with M = B. Rotary embeddings use each row's own
/// position; each row's keys and values are appended to its own session's cache and its attention runs
/// over that cache only, so the sequences never see one another.
public enum BatchDecode {
    /// Feeds `tokens[b]` to `sessions[b]` for every b and returns the next-token logits of each, (B, V)
    /// row-major. Every session advances by one position.
    ///
    /// The result for a row equals `sessions[b].forward([.tokens([tokens[b]])])` run alone up to the
    /// matrix kernels' row independence (bit-equal with the exact and int8 kernels of this package).
    /// - Parameters:
    ///   - sessions: Distinct sessions of one model object, all with the same precision.
    ///   - tokens: One token id per session.
    ///   - threads: Worker threads for the matrix products and attention.
    /// - Throws: `ModelError.invalidInput` for mismatched counts, sessions of different models or
    ///   precisions, a session listed twice, a bad token id or a full session (nothing is changed then);
    ///   `.insufficientMemory` when a KV cache cannot grow.
    public static func step(_ sessions: [InferenceSession], tokens: [Int32], threads: Int = 1) throws(ModelError) -> [Float] {
        let B = sessions.count
        guard B == tokens.count else {
            throw ModelError(.invalidInput, "a batch step needs one token per session; got \(tokens.count) for \(B)")
        }
        guard let first = sessions.first else { return [] }
        let model = first.model
        let precision = first.precision
        for (b, s) in sessions.enumerated() {
            guard s.model === model else {
                throw ModelError(.invalidInput, "batched session \(b) runs another model object")
            }
            guard s.precision == precision else {
                throw ModelError(.invalidInput, "batched session \(b) uses \(s.precision) matrix products, session 0 \(precision)")
            }
            guard s.position < s.capacity else {
                throw ModelError(.invalidInput, "batched session \(b) is full (\(s.capacity) positions)")
            }
        }
        guard Set(sessions.map { ObjectIdentifier($0) }).count == B else {
            throw ModelError(.invalidInput, "a session appears twice in one batch step")
        }
        var x = try model.embed(tokens)  // (B, C); checks the ids
        for s in sessions { try s.reserveCache(positions: s.position + 1) }

        let cfg = model.config
        let C = cfg.hiddenSize, D = cfg.headDim, H = cfg.numAttentionHeads, Hkv = cfg.numKeyValueHeads
        let F = cfg.intermediateSize
        let KV = Hkv * D
        let threads = max(1, threads)
        var h = [Float](repeating: 0, count: B * C)
        var q = [Float](repeating: 0, count: B * H * D)
        var k = [Float](repeating: 0, count: B * KV)
        var v = [Float](repeating: 0, count: B * KV)
        var att = [Float](repeating: 0, count: B * H * D)
        var proj = [Float](repeating: 0, count: B * C)
        var gate = [Float](repeating: 0, count: B * F)
        var up = [Float](repeating: 0, count: B * F)
        let positions = sessions.map { Int32($0.position) }
        let maxVisible = sessions.map { $0.position + 1 }.max()!
        // Attention work items: (row, head chunk); heads are computed independently, so any split gives
        // the bits of the one-sequence path.
        let headChunks = max(1, min(H, (threads + B - 1) / B))
        let headsPer = (H + headChunks - 1) / headChunks

        for (l, layer) in model.layers.enumerated() {
            x.withUnsafeMutableBufferPointer { xb in
                let xp = xb.baseAddress!
                layer.attnNorm.withUnsafeBufferPointer { w in
                    h.withUnsafeMutableBufferPointer { rmsnormForward(out: $0.baseAddress!, rstd: nil, x: xp, weight: w.baseAddress!, T: B, C: C, eps: cfg.rmsNormEps) }
                }
                h.withUnsafeBufferPointer { hb in
                    q.withUnsafeMutableBufferPointer { linearForward(out: $0.baseAddress!, x: hb.baseAddress!, M: B, layer: layer.q, threads: threads, precision: precision) }
                    k.withUnsafeMutableBufferPointer { linearForward(out: $0.baseAddress!, x: hb.baseAddress!, M: B, layer: layer.k, threads: threads, precision: precision) }
                    v.withUnsafeMutableBufferPointer { linearForward(out: $0.baseAddress!, x: hb.baseAddress!, M: B, layer: layer.v, threads: threads, precision: precision) }
                }
                // RoPE at each row's own position, then the row's keys and values into its own cache.
                for (b, s) in sessions.enumerated() {
                    withUnsafePointer(to: positions[b]) { pp in
                        q.withUnsafeMutableBufferPointer { s.rope.apply($0.baseAddress! + b * H * D, T: 1, heads: H, headSize: D, positions: pp) }
                        k.withUnsafeMutableBufferPointer { s.rope.apply($0.baseAddress! + b * KV, T: 1, heads: Hkv, headSize: D, positions: pp) }
                    }
                    let at = Int(positions[b]) * KV
                    s.kCache[l].withUnsafeMutableBufferPointer { kc in
                        k.withUnsafeBufferPointer { kb in (kc.baseAddress! + at).update(from: kb.baseAddress! + b * KV, count: KV) }
                    }
                    s.vCache[l].withUnsafeMutableBufferPointer { vc in
                        v.withUnsafeBufferPointer { vb in (vc.baseAddress! + at).update(from: vb.baseAddress! + b * KV, count: KV) }
                    }
                }
                // Attention per row over its own cache. The caches are read through raw addresses taken
                // while no session's cache is being resized (reserveCache ran before the layers).
                let cacheAddresses = sessions.map { s in
                    (s.kCache[l].withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) },
                     s.vCache[l].withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) })
                }
                q.withUnsafeBufferPointer { qb in
                    att.withUnsafeMutableBufferPointer { ab in
                        let (qa, aa) = (Int(bitPattern: qb.baseAddress), Int(bitPattern: ab.baseAddress))
                        parallelFor(B * headChunks, threads: threads) { item in
                            let b = item / headChunks, chunk = item % headChunks
                            let heads = chunk * headsPer ..< min(H, chunk * headsPer + headsPer)
                            if heads.isEmpty { return }
                            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: maxVisible)
                            defer { scratch.deallocate() }
                            attentionForward(out: UnsafeMutablePointer<Float>(bitPattern: aa)! + b * H * D, probs: nil,
                                             q: UnsafePointer<Float>(bitPattern: qa)! + b * H * D,
                                             kCache: UnsafePointer(bitPattern: cacheAddresses[b].0)!,
                                             vCache: UnsafePointer(bitPattern: cacheAddresses[b].1)!,
                                             T: 1, pos0: Int(positions[b]), H: H, Hkv: Hkv, D: D, heads: heads, scratch: scratch)
                        }
                    }
                }
                layer.finishBlock(xp, attention: att, rows: B, config: cfg, threads: threads, precision: precision,
                                  proj: &proj, h: &h, gate: &gate, up: &up)
            }
        }
        for s in sessions { s.position += 1 }
        return first.outputLogits(x, rows: Array(0 ..< B), threads: threads)
    }
}
