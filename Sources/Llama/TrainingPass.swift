// The training pass for a batch sharing one soft prompt (`PromptGradient.computeBatch`), and its
// forward-only half (`lossesBatch`).
//
// Every example starts with the same P prompt rows and attention is causal, so the prompt rows'
// activations are the same in every example: they are computed once per batch. The batch is one layout
// (Batch.swift) of N = P + Σ T_b rows: segment 0 is the prompt, segment b its example's rows up to the last
// target, whose context is segment 0. The blocks (Block.swift) run over it forward, keeping each layer's
// activations, then backward; each example's attention yields the gradient of the prompt rows' keys and
// values at every layer, summed over the batch in example order before the key/value projections'
// backward. The result is the sum of the per-example gradients, computed once.
//
// Determinism: every parallel task owns what it writes and every sum has a fixed order, so the result does
// not depend on the thread count.

/// The batch's rows, segments and targets, checked.
struct SharedPromptPlan {
    let P: Int
    /// Segment 0 is the prompt, segment b + 1 example b.
    let layout: BatchLayout
    /// Batch rows whose logits are scored, in example then target order, and their tokens.
    let targetRows: [Int]
    let targetTokens: [Int32]
    /// Targets per example.
    let targetCounts: [Int]
    /// Σ per example of (P + T_b).
    let positionsProcessed: Int
    /// Tokens of the example rows, in batch order (row P + i holds `rowTokens[i]`).
    let rowTokens: [Int32]

    init(P: Int, examples: [PromptExample], vocab V: Int, maxPositions: Int, heads H: Int, kvWidth: Int) throws(ModelError) {
        self.P = P
        var segments: [(rows: Int, prefix: Int, context: SegmentContext)] = [(P, 0, .none)]
        var start = P
        var targetRows: [Int] = [], targetTokens: [Int32] = [], counts: [Int] = [], rowTokens: [Int32] = []
        var processed = 0
        for example in examples {
            for id in example.tokens where id < 0 || Int(id) >= V {
                throw ModelError(.invalidInput, "token id \(id) is outside the vocabulary (0..<\(V))")
            }
            guard !example.targets.isEmpty else { throw ModelError(.invalidInput, "no targets: the loss is undefined") }
            let total = P + example.tokens.count
            for target in example.targets {
                guard target.row >= 0, target.row < total, target.token >= 0, Int(target.token) < V else {
                    throw ModelError(.invalidInput, "target \(target) is outside the \(total) rows or the vocabulary")
                }
            }
            let T = max(example.targets.map(\.row).max()! + 1, P)
            guard T <= maxPositions else {
                throw ModelError(.invalidInput, "an example needs \(T) positions (\(P) soft-prompt rows + \(T - P) tokens), more than the "
                                 + "\(maxPositions) this pass allows (the model's context length, or the pass's maxRows if smaller)")
            }
            let rows = T - P
            segments.append((rows, P, .segment(0)))
            for target in example.targets {
                targetRows.append(target.row < P ? target.row : start + target.row - P)
                targetTokens.append(target.token)
            }
            counts.append(example.targets.count)
            rowTokens += example.tokens[0 ..< rows]
            start += rows
            processed += T
        }
        layout = BatchLayout(segments, heads: H, kvWidth: kvWidth)
        self.targetRows = targetRows
        self.targetTokens = targetTokens
        targetCounts = counts
        positionsProcessed = processed
        self.rowTokens = rowTokens
    }
}

extension PromptGradient {
    /// The shared-prompt pass for a checked plan (see the file comment).
    /// - Parameter backward: false for the forward pass and the losses only (the gradient is empty and
    ///   one layer's activations are kept at a time).
    func computeShared(prompt: [Float], plan: SharedPromptPlan, backward: Bool = true) throws(ModelError) -> BatchLossGradient {
        let cfg = model.config
        let C = cfg.hiddenSize, D = cfg.headDim, H = cfg.numAttentionHeads, Hkv = cfg.numKeyValueHeads
        let F = cfg.intermediateSize, V = cfg.vocabSize, L = model.layers.count
        let HD = H * D, KV = Hkv * D
        let layout = plan.layout
        let P = plan.P, N = layout.rows, R = plan.targetRows.count, B = layout.segments.count - 1

        // The arena: per-layer saved activations, then working buffers.
        var carve = ArenaCarver()
        // Kept by layer l's forward for its backward (offsets within the layer's slot):
        let oQ = carve.take(N * HD)         // (N, H, D) after RoPE
        let oK = carve.take(N * KV)         // (N, Hkv, D) after RoPE
        let oV = carve.take(N * KV)         // (N, Hkv, D)
        let oGate = carve.take(N * F)       // (N, F) pre-activation
        let oUp = carve.take(N * F)         // (N, F)
        let oXIn = carve.take(backward ? N * C : 0)                 // (N, C) layer input
        let oRstd1 = carve.take(backward ? N : 0)                   // (N)
        let oProbs = carve.take(backward ? layout.probsPerLayer : 0) // per segment (rows, H, prefix + rows)
        let oXMid = carve.take(backward ? N * C : 0)                // (N, C) after the attention residual
        let oRstd2 = carve.take(backward ? N : 0)                   // (N)
        let layerStride = carve.total
        var work = ArenaCarver()
        let wX = work.take(N * C)           // (N, C) residual stream
        let wH = work.take(N * C)           // (N, C) normed rows; in the backward d(normed rows)
        let wAtt = work.take(N * HD)        // (N, H·D) attention output; in the backward its gradient
        let wProj = work.take(N * C)        // (N, C) projection output
        let wAct = work.take(N * F)         // (N, F) silu(gate) ⊙ up; in the backward its gradient
        let wScratch = work.take(BlockBuffers.scratchFloats(layout, heads: max(H, Hkv)))  // one score row per attention task
        let wXSel = work.take(R * C)        // (R, C) final rows at the targets
        let wRstdF = work.take(R)           // (R)
        let wHF = work.take(R * C)          // (R, C) output-normed; in the backward its gradient
        let wLogits = work.take(R * V)      // (R, V) logits, then d(logits)
        let bw = backward ? 1 : 0
        let wDX = work.take(bw * N * C)     // (N, C) gradient of the residual stream
        let wDQ = work.take(bw * N * HD)    // (N, H, D)
        let wDK = work.take(bw * N * KV)    // (N, Hkv, D)
        let wDV = work.take(bw * N * KV)    // (N, Hkv, D)
        let wDGate = work.take(bw * N * F)  // (N, F)
        let wDUp = work.take(bw * N * F)    // (N, F)
        let wCtxK = work.take(bw * layout.contextGradientFloats)  // (B, P, Hkv, D) each example's d(prompt keys)
        let wCtxV = work.take(bw * layout.contextGradientFloats)  // (B, P, Hkv, D) each example's d(prompt values)
        let wDXSel = work.take(bw * R * C)  // (R, C)
        let keptLayers = backward ? L : 1
        let arenaFloats = keptLayers * layerStride + work.total
        if arenaFloats > arena.capacity {
            try budget?.check([("weights", model.weightBytes), ("activations of \(N) positions", arenaFloats * MemoryLayout<Float>.size)],
                              for: "a batch of \(B) examples")
        }
        arena.reserve(arenaFloats)
        let w = arena.base + keptLayers * layerStride
        let x = w + wX
        func buffers(_ l: Int) -> BlockBuffers {
            let s = arena.base + (backward ? l : 0) * layerStride
            return BlockBuffers(h: w + wH, q: s + oQ, k: s + oK, v: s + oV, att: w + wAtt, proj: w + wProj, gate: s + oGate,
                                up: s + oUp, act: w + wAct, scratch: w + wScratch,
                                xIn: backward ? s + oXIn : nil, rstd1: backward ? s + oRstd1 : nil,
                                probs: backward ? s + oProbs : nil, xMid: backward ? s + oXMid : nil,
                                rstd2: backward ? s + oRstd2 : nil)
        }
        let pass = ModelPass(model: model, rope: rope, threads: threads, precision: .exact)

        // Input rows: the prompt, then each example's token embeddings.
        prompt.withUnsafeBufferPointer { x.update(from: $0.baseAddress!, count: P * C) }
        for (i, id) in plan.rowTokens.enumerated() {
            model.tokenEmbedding.dequantizeRow(Int(id), into: x + (P + i) * C)
        }
        pass.blocksForward(x: x, layout: layout, buffers: buffers)

        if !backward {
            return forwardHeadLosses(pass: pass, x: x, plan: plan, xSel: w + wXSel, hF: w + wHF, logits: w + wLogits)
        }

        // Head at the target rows, loss and d(logits) = (softmax - onehot) / R, one task per target row.
        let xSel = w + wXSel, rstdF = w + wRstdF, hF = w + wHF, logits = w + wLogits
        pass.headForward(x: x, rows: plan.targetRows, selected: xSel, rstd: rstdF, normed: hF, logits: logits)
        let lossBuffer = UnsafeMutablePointer<Double>.allocate(capacity: R)
        defer { lossBuffer.deallocate() }
        let lossOut = SharedPointer(lossBuffer), logitRows = SharedFloats(logits)
        let tokens = plan.targetTokens
        parallelFor(R, threads: threads) { i in
            lossOut.base[i] = crossEntropyBackward(logitRows.base + i * V, count: V, target: Int(tokens[i]), meanOver: R)
        }
        let losses = Array(UnsafeBufferPointer(start: lossBuffer, count: R))

        // Backward: the head, then the blocks in reverse; dx is the gradient of each block's output, then of its input.
        let dx = w + wDX
        dx.update(repeating: 0, count: N * C)
        pass.headBackward(dx: dx, rows: plan.targetRows, dlogits: logits, selected: xSel, rstd: rstdF, dNormed: hF,
                          dSelected: w + wDXSel)
        let gradients = BlockGradients(dh: w + wH, datt: w + wAtt, dq: w + wDQ, dk: w + wDK, dv: w + wDV, dact: w + wAct,
                                       dgate: w + wDGate, dup: w + wDUp, contextK: w + wCtxK, contextV: w + wCtxV,
                                       scratch: w + wScratch)
        for l in (0 ..< L).reversed() {
            pass.blockBackward(l, dx: dx, layout: layout, saved: buffers(l), gradients)
        }
        return BatchLossGradient(loss: losses.reduce(0, +) / Double(R), targetLosses: split(losses, plan.targetCounts),
                                 gradient: Array(UnsafeBufferPointer(start: dx, count: P * C)),
                                 positionsProcessed: plan.positionsProcessed)
    }

    /// The forward-only head: logits once per distinct target row (several targets on one row, such as the
    /// one-token choices of a classification row, share it), then each target's loss from its row's
    /// log-sum-exp, as the training head computes it (same bits).
    private func forwardHeadLosses(pass: ModelPass, x: UnsafeMutablePointer<Float>, plan: SharedPromptPlan,
                                   xSel: UnsafeMutablePointer<Float>, hF: UnsafeMutablePointer<Float>,
                                   logits: UnsafeMutablePointer<Float>) -> BatchLossGradient {
        let V = model.config.vocabSize
        var slotOfRow: [Int: Int] = [:], rows: [Int] = [], slots: [Int] = []
        for r in plan.targetRows {
            if let slot = slotOfRow[r] { slots.append(slot); continue }
            slotOfRow[r] = rows.count
            slots.append(rows.count)
            rows.append(r)
        }
        let U = rows.count, R = slots.count
        pass.headForward(x: x, rows: rows, selected: xSel, rstd: nil, normed: hF, logits: logits)
        let stats = UnsafeMutablePointer<(max: Float, sum: Double)>.allocate(capacity: U)
        defer { stats.deallocate() }
        let statsOut = SharedPointer(stats), logitRows = SharedFloats(logits)
        parallelFor(U, threads: threads) { i in statsOut.base[i] = logSumExpParts(logitRows.base + i * V, V) }
        let losses = (0 ..< R).map { i -> Double in
            crossEntropy(stats[slots[i]], logit: logits[slots[i] * V + Int(plan.targetTokens[i])])
        }
        return BatchLossGradient(loss: losses.reduce(0, +) / Double(R), targetLosses: split(losses, plan.targetCounts),
                                 gradient: [], positionsProcessed: plan.positionsProcessed)
    }

    /// `losses` cut into consecutive runs of `counts`.
    private func split(_ losses: [Double], _ counts: [Int]) -> [[Double]] {
        var out: [[Double]] = []
        var next = 0
        for count in counts {
            out.append(Array(losses[next ..< next + count]))
            next += count
        }
        return out
    }
}
