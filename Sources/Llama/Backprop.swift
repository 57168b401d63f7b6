// The training pass: a forward that keeps what the backward needs, then the backward to the input
// embeddings. No weight gradients: the model is frozen; only d(loss)/d(input rows) is produced.
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

/// The result of `PromptGradient.compute`.
public struct LossGradient: Sendable {
    /// Mean cross-entropy over the targets (natural log).
    public var loss: Double
    /// Per-target losses, in target order.
    public var targetLosses: [Double]
    /// d(loss)/d(input rows) for the first `gradientRows` input rows, (gradientRows, C).
    public var gradient: [Float]
    /// Rows processed (the prefix up to the last target).
    public var rowsProcessed: Int
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

/// What one layer's forward keeps for its backward. Shapes in comments.
struct LayerActivations {
    var xIn: [Float]      // (T, C) layer input
    var rstd1: [Float]    // (T)
    var h1: [Float]       // (T, C) attention-normed input
    var q: [Float]        // (T, H, D) after RoPE
    var k: [Float]        // (T, Hkv, D) after RoPE
    var v: [Float]        // (T, Hkv, D)
    var probs: [Float]    // (T, H, T)
    var att: [Float]      // (T, H*D)
    var xMid: [Float]     // (T, C) after the attention residual
    var rstd2: [Float]    // (T)
    var h2: [Float]       // (T, C) ffn-normed
    var gate: [Float]     // (T, F) pre-activation
    var up: [Float]       // (T, F)
    var act: [Float]      // (T, F) silu(gate) * up
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

    /// Mean next-token cross-entropy over `targets` for the sequence `inputs` (starting at position 0),
    /// and its gradient with respect to the first `gradientRows` input rows.
    /// - Throws: `ModelError.invalidInput` for targets outside the sequence or token ids outside the vocabulary.
    public func compute(_ inputs: [ModelInput], targets: [TokenTarget], gradientRows: Int) throws(ModelError) -> LossGradient {
        let cfg = model.config
        let C = cfg.hiddenSize, V = cfg.vocabSize
        guard !targets.isEmpty else { throw ModelError(.invalidInput, "no targets: the loss is undefined") }
        var x = try model.inputRows(inputs)
        let total = x.count / C
        for target in targets {
            guard target.row >= 0, target.row < total, target.token >= 0, Int(target.token) < V else {
                throw ModelError(.invalidInput, "target \(target) is outside the \(total) rows or the vocabulary")
            }
        }
        guard gradientRows >= 0, gradientRows <= total else {
            throw ModelError(.invalidInput, "gradient rows \(gradientRows) exceed the \(total) input rows")
        }
        let T = max(targets.map(\.row).max()! + 1, gradientRows)
        guard T <= rope.maxPositions else {
            throw ModelError(.invalidInput, "\(T) rows exceed the \(rope.maxPositions) positions this pass was set up for")
        }
        x.removeLast((total - T) * C)

        // Forward, keeping activations.
        var saved: [LayerActivations] = []
        saved.reserveCapacity(cfg.numHiddenLayers)
        for layer in model.layers {
            saved.append(layerForward(&x, layer: layer, T: T))
        }
        let rows = targets.map(\.row)
        let R = rows.count
        var xSel = [Float](repeating: 0, count: R * C)       // (R, C)
        for (i, r) in rows.enumerated() { for c in 0 ..< C { xSel[i * C + c] = x[r * C + c] } }
        var rstdF = [Float](repeating: 0, count: R)
        var hF = [Float](repeating: 0, count: R * C)
        rmsnorm(&hF, &rstdF, xSel, model.outputNorm, T: R)
        var logits = [Float](repeating: 0, count: R * V)      // (R, V)
        linear(&logits, hF, M: R, model.output)

        // Loss and d(logits): (softmax - onehot) / R.
        var losses: [Double] = []
        var dlogits = logits
        for i in 0 ..< R {
            let row = i * V
            var m = -Float.infinity
            for v in 0 ..< V { m = max(m, logits[row + v]) }
            var sum: Double = 0
            for v in 0 ..< V { sum += Double(expf(logits[row + v] - m)) }
            let lse = Double(m) + _log(sum)
            let t = Int(targets[i].token)
            losses.append(lse - Double(logits[row + t]))
            let invR = 1 / Float(R)
            for v in 0 ..< V { dlogits[row + v] = Float(_exp(Double(logits[row + v]) - lse)) * invR }
            dlogits[row + t] -= invR
        }

        // Backward.
        var dhF = [Float](repeating: 0, count: R * C)
        linearBack(&dhF, dlogits, M: R, model.output)
        var dxSel = [Float](repeating: 0, count: R * C)
        rmsnormBack(&dxSel, dhF, xSel, rstdF, model.outputNorm, T: R)
        var dx = [Float](repeating: 0, count: T * C)
        for (i, r) in rows.enumerated() { for c in 0 ..< C { dx[r * C + c] += dxSel[i * C + c] } }
        for (l, layer) in model.layers.enumerated().reversed() {
            layerBackward(&dx, layer: layer, saved: saved[l], T: T)
        }
        let loss = losses.reduce(0, +) / Double(R)
        return LossGradient(loss: loss, targetLosses: losses, gradient: Array(dx[0 ..< gradientRows * C]), rowsProcessed: T)
    }

    /// Mean next-token cross-entropy over every target of every example, each example being the shared
    /// soft prompt `prompt` (P, C) followed by the example's tokens, and its gradient with respect to the
    /// prompt (P, C). Targets index rows of the whole sequence (prompt rows first), as in `compute`.
    ///
    /// The loss is the token-level mean over the batch (as Hugging Face's causal-LM loss): an example with
    /// more targets weighs more. Every example must have at least one target.
    ///
    /// The prompt rows are computed once for the whole batch (they are the same in every example), and
    /// each example's rows only up to its last target, all in one matrix (`SharedPromptPass.swift`). The
    /// result is deterministic: the same inputs give the same bits, whatever `threads` is.
    /// - Throws: `ModelError.invalidInput` for an empty batch, a prompt that is not whole rows, an example
    ///   without targets, a token id outside the vocabulary or a bad target.
    public func computeBatch(prompt: [Float], examples: [PromptExample]) throws(ModelError) -> BatchLossGradient {
        let cfg = model.config
        let C = cfg.hiddenSize
        guard prompt.count % C == 0 else {
            throw ModelError(.invalidInput, "prompt holds \(prompt.count) floats, not a multiple of the width \(C)")
        }
        guard examples.contains(where: { !$0.targets.isEmpty }) else {
            throw ModelError(.invalidInput, "no targets in the batch: the loss is undefined")
        }
        let plan = try SharedPromptPlan(P: prompt.count / C, examples: examples, vocab: cfg.vocabSize,
                                        maxPositions: rope.maxPositions, heads: cfg.numAttentionHeads)
        return try computeShared(prompt: prompt, plan: plan)
    }

    /// The per-target losses (−log p of each target token, natural log) of a batch sharing one soft
    /// prompt: the forward half of `computeBatch` (same plan, same bits), without the gradient.
    /// Scoring many short rows this way decodes each weight matrix once per batch instead of once per row.
    /// - Throws: as `computeBatch`.
    public func lossesBatch(prompt: [Float], examples: [PromptExample]) throws(ModelError) -> BatchLossGradient {
        let cfg = model.config
        let C = cfg.hiddenSize
        guard prompt.count % C == 0 else {
            throw ModelError(.invalidInput, "prompt holds \(prompt.count) floats, not a multiple of the width \(C)")
        }
        guard examples.contains(where: { !$0.targets.isEmpty }) else {
            throw ModelError(.invalidInput, "no targets in the batch: the loss is undefined")
        }
        let plan = try SharedPromptPlan(P: prompt.count / C, examples: examples, vocab: cfg.vocabSize,
                                        maxPositions: rope.maxPositions, heads: cfg.numAttentionHeads)
        return try computeShared(prompt: prompt, plan: plan, backward: false)
    }

    /// `computeBatch` as a loop of `compute` over the examples: the oracle the shared-prompt pass is
    /// tested against (same contract, about (P + T) / T times slower per example).
    package func computeBatchNaive(prompt: [Float], examples: [PromptExample]) throws(ModelError) -> BatchLossGradient {
        let C = model.config.hiddenSize
        guard prompt.count % C == 0 else {
            throw ModelError(.invalidInput, "prompt holds \(prompt.count) floats, not a multiple of the width \(C)")
        }
        let P = prompt.count / C
        let total = examples.reduce(0) { $0 + $1.targets.count }
        guard total > 0 else { throw ModelError(.invalidInput, "no targets in the batch: the loss is undefined") }
        var gradient = [Float](repeating: 0, count: prompt.count)
        var losses: [[Double]] = []
        var positions = 0
        var sum: Double = 0
        for example in examples {
            let r = try compute([.embeddings(prompt), .tokens(example.tokens)], targets: example.targets, gradientRows: P)
            let weight = Float(example.targets.count) / Float(total)
            for i in 0 ..< gradient.count { gradient[i] += weight * r.gradient[i] }
            losses.append(r.targetLosses)
            sum += r.targetLosses.reduce(0, +)
            positions += r.rowsProcessed
        }
        return BatchLossGradient(loss: sum / Double(total), targetLosses: losses, gradient: gradient,
                                 positionsProcessed: positions)
    }

    // MARK: one block

    private func layerForward(_ x: inout [Float], layer: LlamaLayer, T: Int) -> LayerActivations {
        let cfg = model.config
        let C = cfg.hiddenSize, D = cfg.headDim, H = cfg.numAttentionHeads, Hkv = cfg.numKeyValueHeads
        let F = cfg.intermediateSize
        var a = LayerActivations(
            xIn: x, rstd1: .init(repeating: 0, count: T), h1: .init(repeating: 0, count: T * C),
            q: .init(repeating: 0, count: T * H * D), k: .init(repeating: 0, count: T * Hkv * D),
            v: .init(repeating: 0, count: T * Hkv * D), probs: .init(repeating: 0, count: T * H * T),
            att: .init(repeating: 0, count: T * H * D), xMid: [], rstd2: .init(repeating: 0, count: T),
            h2: .init(repeating: 0, count: T * C), gate: .init(repeating: 0, count: T * F),
            up: .init(repeating: 0, count: T * F), act: .init(repeating: 0, count: T * F))
        rmsnorm(&a.h1, &a.rstd1, x, layer.attnNorm, T: T)
        linear(&a.q, a.h1, M: T, layer.q)
        linear(&a.k, a.h1, M: T, layer.k)
        linear(&a.v, a.h1, M: T, layer.v)
        let positions = (0 ..< T).map(Int32.init)
        positions.withUnsafeBufferPointer { pp in
            a.q.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, T: T, heads: H, headSize: D, positions: pp.baseAddress!) }
            a.k.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, T: T, heads: Hkv, headSize: D, positions: pp.baseAddress!) }
        }
        let threads = self.threads
        let workers = min(H, threads)
        a.q.withUnsafeBufferPointer { qb in a.k.withUnsafeBufferPointer { kb in a.v.withUnsafeBufferPointer { vb in
            a.att.withUnsafeMutableBufferPointer { ab in a.probs.withUnsafeMutableBufferPointer { pb in
                let addr = (Int(bitPattern: qb.baseAddress), Int(bitPattern: kb.baseAddress), Int(bitPattern: vb.baseAddress),
                            Int(bitPattern: ab.baseAddress), Int(bitPattern: pb.baseAddress))
                parallelFor(workers, threads: threads) { chunk in
                    let per = (H + workers - 1) / workers
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: T)
                    defer { scratch.deallocate() }
                    attentionForward(out: UnsafeMutablePointer(bitPattern: addr.3)!, probs: UnsafeMutablePointer(bitPattern: addr.4)!,
                                     q: UnsafePointer(bitPattern: addr.0)!, kCache: UnsafePointer(bitPattern: addr.1)!,
                                     vCache: UnsafePointer(bitPattern: addr.2)!, T: T, pos0: 0, H: H, Hkv: Hkv, D: D,
                                     heads: chunk * per ..< min(H, chunk * per + per), scratch: scratch)
                }
            } }
        } } }
        var proj = [Float](repeating: 0, count: T * C)
        linear(&proj, a.att, M: T, layer.o)
        for i in 0 ..< T * C { x[i] += proj[i] }
        a.xMid = x
        rmsnorm(&a.h2, &a.rstd2, x, layer.ffnNorm, T: T)
        linear(&a.gate, a.h2, M: T, layer.gate)
        linear(&a.up, a.h2, M: T, layer.up)
        a.gate.withUnsafeBufferPointer { g in a.up.withUnsafeBufferPointer { u in a.act.withUnsafeMutableBufferPointer {
            swigluForward(out: $0.baseAddress!, gate: g.baseAddress!, up: u.baseAddress!, count: T * F)
        } } }
        linear(&proj, a.act, M: T, layer.down)
        for i in 0 ..< T * C { x[i] += proj[i] }
        return a
    }

    /// dx (T, C): on entry the gradient of the block's output, on exit that of its input.
    private func layerBackward(_ dx: inout [Float], layer: LlamaLayer, saved a: LayerActivations, T: Int) {
        let cfg = model.config
        let C = cfg.hiddenSize, D = cfg.headDim, H = cfg.numAttentionHeads, Hkv = cfg.numKeyValueHeads
        let F = cfg.intermediateSize
        // x_out = x_mid + down(act)
        var dact = [Float](repeating: 0, count: T * F)
        linearBack(&dact, dx, M: T, layer.down)
        var dgate = [Float](repeating: 0, count: T * F), dup = [Float](repeating: 0, count: T * F)
        dact.withUnsafeBufferPointer { da in a.gate.withUnsafeBufferPointer { g in a.up.withUnsafeBufferPointer { u in
            dgate.withUnsafeMutableBufferPointer { dg in dup.withUnsafeMutableBufferPointer { du in
                swigluBackward(dgate: dg.baseAddress!, dup: du.baseAddress!, dout: da.baseAddress!,
                               gate: g.baseAddress!, up: u.baseAddress!, count: T * F)
            } }
        } } }
        var dh2 = [Float](repeating: 0, count: T * C)
        linearBack(&dh2, dgate, M: T, layer.gate)
        linearBack(&dh2, dup, M: T, layer.up)
        rmsnormBack(&dx, dh2, a.xMid, a.rstd2, layer.ffnNorm, T: T)  // dx is now d(x_mid)
        // x_mid = x_in + o(att)
        var datt = [Float](repeating: 0, count: T * H * D)
        linearBack(&datt, dx, M: T, layer.o)
        var dq = [Float](repeating: 0, count: T * H * D)
        var dk = [Float](repeating: 0, count: T * Hkv * D), dv = [Float](repeating: 0, count: T * Hkv * D)
        let threads = self.threads
        let workers = min(Hkv, threads)
        datt.withUnsafeBufferPointer { dab in a.probs.withUnsafeBufferPointer { pb in
            a.q.withUnsafeBufferPointer { qb in a.k.withUnsafeBufferPointer { kb in a.v.withUnsafeBufferPointer { vb in
                dq.withUnsafeMutableBufferPointer { dqb in dk.withUnsafeMutableBufferPointer { dkb in dv.withUnsafeMutableBufferPointer { dvb in
                    let ins = (Int(bitPattern: dab.baseAddress), Int(bitPattern: pb.baseAddress), Int(bitPattern: qb.baseAddress),
                               Int(bitPattern: kb.baseAddress), Int(bitPattern: vb.baseAddress))
                    let outs = (Int(bitPattern: dqb.baseAddress), Int(bitPattern: dkb.baseAddress), Int(bitPattern: dvb.baseAddress))
                    parallelFor(workers, threads: threads) { chunk in
                        let per = (Hkv + workers - 1) / workers
                        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: T)
                        defer { scratch.deallocate() }
                        attentionBackward(dq: UnsafeMutablePointer(bitPattern: outs.0)!, dk: UnsafeMutablePointer(bitPattern: outs.1)!,
                                          dv: UnsafeMutablePointer(bitPattern: outs.2)!, dout: UnsafePointer(bitPattern: ins.0)!,
                                          probs: UnsafePointer(bitPattern: ins.1)!, q: UnsafePointer(bitPattern: ins.2)!,
                                          k: UnsafePointer(bitPattern: ins.3)!, v: UnsafePointer(bitPattern: ins.4)!,
                                          T: T, H: H, Hkv: Hkv, D: D, kvHeads: chunk * per ..< min(Hkv, chunk * per + per),
                                          scratch: scratch)
                    }
                } } }
            } } }
        } }
        let positions = (0 ..< T).map(Int32.init)
        positions.withUnsafeBufferPointer { pp in
            dq.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, T: T, heads: H, headSize: D, positions: pp.baseAddress!, inverse: true) }
            dk.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, T: T, heads: Hkv, headSize: D, positions: pp.baseAddress!, inverse: true) }
        }
        var dh1 = [Float](repeating: 0, count: T * C)
        linearBack(&dh1, dq, M: T, layer.q)
        linearBack(&dh1, dk, M: T, layer.k)
        linearBack(&dh1, dv, M: T, layer.v)
        rmsnormBack(&dx, dh1, a.xIn, a.rstd1, layer.attnNorm, T: T)  // dx is now d(x_in)
    }

    // MARK: array wrappers over the layer kernels

    private func rmsnorm(_ out: inout [Float], _ rstd: inout [Float], _ x: [Float], _ w: [Float], T: Int) {
        let C = model.config.hiddenSize, eps = model.config.rmsNormEps
        out.withUnsafeMutableBufferPointer { o in rstd.withUnsafeMutableBufferPointer { r in
            x.withUnsafeBufferPointer { xb in w.withUnsafeBufferPointer { wb in
                rmsnormForward(out: o.baseAddress!, rstd: r.baseAddress!, x: xb.baseAddress!, weight: wb.baseAddress!, T: T, C: C, eps: eps)
            } }
        } }
    }

    private func rmsnormBack(_ dx: inout [Float], _ dy: [Float], _ x: [Float], _ rstd: [Float], _ w: [Float], T: Int) {
        let C = model.config.hiddenSize
        dx.withUnsafeMutableBufferPointer { d in dy.withUnsafeBufferPointer { g in x.withUnsafeBufferPointer { xb in
            rstd.withUnsafeBufferPointer { r in w.withUnsafeBufferPointer { wb in
                rmsnormBackward(dx: d.baseAddress!, dy: g.baseAddress!, x: xb.baseAddress!, rstd: r.baseAddress!, weight: wb.baseAddress!, T: T, C: C)
            } }
        } } }
    }

    private func linear(_ out: inout [Float], _ x: [Float], M: Int, _ layer: Linear) {
        out.withUnsafeMutableBufferPointer { o in x.withUnsafeBufferPointer { xb in
            linearForward(out: o.baseAddress!, x: xb.baseAddress!, M: M, layer: layer, threads: threads)
        } }
    }

    private func linearBack(_ dx: inout [Float], _ dy: [Float], M: Int, _ layer: Linear) {
        dx.withUnsafeMutableBufferPointer { d in dy.withUnsafeBufferPointer { g in
            linearBackward(dx: d.baseAddress!, dy: g.baseAddress!, M: M, layer: layer, threads: threads)
        } }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _exp(_ x: Double) -> Double { Glibc.exp(x) }
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
#endif
