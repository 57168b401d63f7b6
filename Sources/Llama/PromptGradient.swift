// The training pass's public face: a forward that keeps what the backward needs, then the backward to the
// soft prompt (TrainingPass.swift, over the blocks of Block.swift). No weight gradients: the model is
// frozen; only d(loss)/d(prompt rows) is produced.
//
// Rows past the last target are never computed (they cannot influence the loss), and logits are computed
// only at target rows.

/// One next-token target: the logits of row `row` should predict `token`.
public struct TokenTarget: Sendable, Equatable {
    public var row: Int
    public var token: Int32
    public init(row: Int, token: Int32) {
        self.row = row
        self.token = token
    }
}

/// One training example for `PromptGradient.computeBatch`: the tokens that follow the soft prompt and the
/// next-token targets, whose rows index the whole sequence (prompt rows first).
public struct PromptExample: Sendable, Equatable {
    public var tokens: [Int32]
    public var targets: [TokenTarget]
    public init(tokens: [Int32], targets: [TokenTarget]) {
        self.tokens = tokens
        self.targets = targets
    }
}

/// The result of `PromptGradient.computeBatch`.
public struct BatchLossGradient: Sendable {
    /// Mean cross-entropy over all targets of the batch (natural log).
    public var loss: Double
    /// Per-example, per-target losses.
    public var targetLosses: [[Double]]
    /// d(loss)/d(prompt), (P, C).
    public var gradient: [Float]
    /// Sequence positions the model processed, counted per example (prompt rows included): the
    /// throughput unit of the training benchmark.
    public var positionsProcessed: Int
}

/// Loss and input gradient of a frozen model, for prompt tuning.
public final class PromptGradient {
    public let model: LlamaModel
    public var threads: Int
    let rope: RoPETable
    /// Working memory of `computeBatch`, kept between calls.
    let arena = FloatArena()
    /// The memory limit `computeBatch` checks its working memory against before growing it (nil: none).
    public var budget: MemoryBudget? = .system()

    public init(model: LlamaModel, maxRows: Int = 2048, threads: Int = 1) {
        self.model = model
        self.threads = max(1, threads)
        let cfg = model.config
        rope = RoPETable(dims: cfg.ropeDimensions, base: cfg.ropeTheta, mode: cfg.ropeMode,
                         maxPositions: min(maxRows, cfg.maxPositionEmbeddings), freqScale: cfg.ropeFreqScale,
                         freqFactors: model.ropeFreqFactors)
    }

    /// Mean next-token cross-entropy over every target of every example, each example being the shared
    /// soft prompt `prompt` (P, C) followed by the example's tokens, and its gradient with respect to the
    /// prompt (P, C). Targets index rows of the whole sequence (prompt rows first).
    ///
    /// The loss is the token-level mean over the batch (as Hugging Face's causal-LM loss): an example with
    /// more targets weighs more. Every example must have at least one target.
    ///
    /// The prompt rows are computed once for the whole batch (they are the same in every example), and
    /// each example's rows only up to its last target, all in one matrix (`TrainingPass.swift`). The
    /// result is deterministic: the same inputs give the same bits, whatever `threads` is.
    /// - Throws: `ModelError.invalidInput` for an empty batch, a prompt that is not whole rows, an example
    ///   without targets, a token id outside the vocabulary or a bad target.
    public func computeBatch(prompt: [Float], examples: [PromptExample]) throws(ModelError) -> BatchLossGradient {
        try computeShared(prompt: prompt, plan: try plan(prompt: prompt, examples: examples))
    }

    /// The checked plan of a batch sharing `prompt`.
    private func plan(prompt: [Float], examples: [PromptExample]) throws(ModelError) -> SharedPromptPlan {
        let cfg = model.config
        let C = cfg.hiddenSize
        guard prompt.count % C == 0 else {
            throw ModelError(.invalidInput, "prompt holds \(prompt.count) floats, not a multiple of the width \(C)")
        }
        guard examples.contains(where: { !$0.targets.isEmpty }) else {
            throw ModelError(.invalidInput, "no targets in the batch: the loss is undefined")
        }
        return try SharedPromptPlan(P: prompt.count / C, examples: examples, vocab: cfg.vocabSize,
                                    maxPositions: rope.maxPositions, heads: cfg.numAttentionHeads,
                                    kvWidth: cfg.numKeyValueHeads * cfg.headDim)
    }

    /// The per-target losses (−log p of each target token, natural log) of a batch sharing one soft
    /// prompt: the forward half of `computeBatch` (same plan, same bits), without the gradient.
    /// Scoring many short rows this way decodes each weight matrix once per batch instead of once per row.
    /// - Throws: as `computeBatch`.
    public func lossesBatch(prompt: [Float], examples: [PromptExample]) throws(ModelError) -> BatchLossGradient {
        try computeShared(prompt: prompt, plan: try plan(prompt: prompt, examples: examples), backward: false)
    }

    /// `computeBatch` as a loop over the examples, one batch of one example each: the oracle the sharing of
    /// the prompt rows across a batch is tested against (same contract, about (P + T) / T times slower per
    /// example). The block itself is checked against finite differences and PyTorch.
    package func computeBatchNaive(prompt: [Float], examples: [PromptExample]) throws(ModelError) -> BatchLossGradient {
        let C = model.config.hiddenSize
        guard prompt.count % C == 0 else {
            throw ModelError(.invalidInput, "prompt holds \(prompt.count) floats, not a multiple of the width \(C)")
        }
        let total = examples.reduce(0) { $0 + $1.targets.count }
        guard total > 0 else { throw ModelError(.invalidInput, "no targets in the batch: the loss is undefined") }
        var gradient = [Float](repeating: 0, count: prompt.count)
        var losses: [[Double]] = []
        var positions = 0
        var sum: Double = 0
        for example in examples {
            let r = try computeBatch(prompt: prompt, examples: [example])
            let weight = Float(example.targets.count) / Float(total)
            for i in 0 ..< gradient.count { gradient[i] += weight * r.gradient[i] }
            losses += r.targetLosses
            sum += r.targetLosses[0].reduce(0, +)
            positions += r.positionsProcessed
        }
        return BatchLossGradient(loss: sum / Double(total), targetLosses: losses, gradient: gradient,
                                 positionsProcessed: positions)
    }
}
