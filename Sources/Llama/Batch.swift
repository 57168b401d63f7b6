// The shape of one pass over the model: N rows stacked in one matrix, cut into segments.
//
// Every weight matrix is applied to all N rows at once (one matmul per matrix per layer); only attention
// looks at segments. A segment is consecutive rows of one sequence; its context is what its rows see
// before their own: nothing, the rows of an earlier segment of the same batch (a soft prompt shared by a
// training batch), or a session's KV cache (prefill, decoding, batched decoding). The callers differ only
// in the segments they build and in what they keep:
//
//   InferenceSession.forward   1 segment of T rows, context: the session's cache at its position
//   BatchDecode.step           B segments of 1 row, each with its own session's cache
//   PromptGradient (training)  segment 0: the soft prompt (no context); segment b: example b's rows, context
//                              segment 0; activations kept for the backward
//
// Deep prompts (prefix tuning, P-tuning v2) are a fourth context: per-layer keys and values supplied from
// outside; the attention backward already produces the gradient of whatever a segment's context holds
// (`BlockGradients.context`), which is that prefix's gradient.

/// What a segment's rows see before their own rows, at every layer.
enum SegmentContext {
    /// Nothing: the segment starts its sequence at position 0.
    case none
    /// The rows of segment `index` of the same batch, which has no context itself (a shared soft prompt).
    case segment(Int)
    /// A KV cache whose first `prefix` positions precede the rows; the block forward appends the rows' own
    /// keys and values after them.
    case cache(KVCache)
}

/// The rows of one pass and how attention groups them.
struct BatchLayout {
    /// Where a segment's rows are (its context is in `contexts`).
    struct Segment: Sendable {
        /// First row in the batch matrix.
        var start: Int
        /// Rows of the segment.
        var rows: Int
        /// Positions of context before the segment; also the position of its first row.
        var prefix: Int
        /// Offset of the segment's attention probabilities, (rows, H, prefix + rows), in a layer's.
        var probs: Int
        /// Offset of the gradient of its context's keys (and values), (prefix, Hkv, D), in a layer's
        /// (`.segment` contexts only).
        var contextGradient: Int
    }

    /// Rows of the batch matrix.
    let rows: Int
    let segments: [Segment]
    /// The context of each segment.
    let contexts: [SegmentContext]
    /// Position of each row.
    let positions: [Int32]
    /// Floats of one layer's attention probabilities.
    let probsPerLayer: Int
    /// Floats of one layer's context key gradients (the same again for values).
    let contextGradientFloats: Int
    /// The longest row of attention scores: max over segments of prefix + rows.
    let maxVisible: Int

    /// - Parameters:
    ///   - segments: Rows, context positions and context of each segment, in batch order. A `.segment(j)`
    ///     context names an earlier segment without context whose row count is the prefix.
    ///   - heads: Query heads (sizes the saved probabilities).
    ///   - kvWidth: Key/value floats per row (sizes the context gradients).
    init(_ segments: [(rows: Int, prefix: Int, context: SegmentContext)], heads H: Int, kvWidth: Int) {
        var out: [Segment] = []
        var start = 0, probs = 0, gradients = 0, maxVisible = 1
        var positions: [Int32] = []
        for (rows, prefix, context) in segments {
            var gradient = 0
            switch context {
            case .none:
                precondition(prefix == 0, "a segment without context starts at position 0")
            case .segment(let j):
                precondition(j < out.count && out[j].prefix == 0 && out[j].rows == prefix,
                             "a segment's context must be an earlier segment of `prefix` rows without context")
                gradient = gradients
                gradients += prefix * kvWidth
            case .cache(let cache):
                precondition(prefix + rows <= cache.capacity, "the cache holds \(cache.capacity) positions")
            }
            out.append(Segment(start: start, rows: rows, prefix: prefix, probs: probs, contextGradient: gradient))
            positions += (prefix ..< prefix + rows).map { Int32($0) }
            probs += rows * H * (prefix + rows)
            maxVisible = max(maxVisible, prefix + rows)
            start += rows
        }
        self.rows = start
        self.segments = out
        contexts = segments.map(\.context)
        self.positions = positions
        probsPerLayer = probs
        contextGradientFloats = gradients
        self.maxVisible = maxVisible
    }
}
