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
        let layout = BatchLayout(sessions.map { (rows: 1, prefix: $0.position, context: .cache($0.cache)) },
                                 heads: model.config.numAttentionHeads, kvWidth: first.cache.rowWidth)
        // Any session's rotary table gives the same angles; the longest covers every session's position.
        let rope = sessions.max { $0.rope.maxPositions < $1.rope.maxPositions }!.rope
        let pass = ModelPass(model: model, rope: rope, threads: max(1, threads), precision: precision)
        let logits = pass.infer(x: &x, layout: layout, logitRows: Array(0 ..< B))
        for s in sessions { s.position += 1 }
        return logits
    }
}
