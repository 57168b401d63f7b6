// The fast training pass for a batch sharing one soft prompt (`PromptGradient.computeBatch`).
//
// Every example starts with the same P prompt rows and attention is causal, so the prompt rows'
// activations are the same in every example: they are computed once per batch. The batch is one matrix
// of N = P + Σ T_b rows (the prompt, then each example's rows up to its last target) that goes through
// every layer with one matmul per weight matrix; only attention looks at segments:
//   segment 0: the prompt, rows 0 ..< P at positions 0 ..< P, causal within itself;
//   segment b: example b's T_b rows at positions P ..< P + T_b, seeing the prompt's keys and values at
//              that layer, then its own rows causally.
// In the backward, each example's attention yields d(keys) and d(values) of the prompt rows at every
// layer; they are summed over the batch (in example order) and added to those of the prompt's own
// attention before the key/value projections' backward. The result is the sum of the per-example
// gradients, computed once (equal to the naive loop up to float reordering).
//
// Determinism: every parallel task owns the rows or columns it writes and every sum has a fixed order, so
// the result does not depend on the thread count (the matmul kernels guarantee the same for their splits).

/// One attention segment of the batch matrix.
struct AttentionSegment {
    /// First row in the batch matrix.
    var start: Int
    /// Rows of the segment.
    var rows: Int
    /// Rows of the prompt segment this one sees before its own (0 for the prompt itself); also the
    /// position of the segment's first row.
    var prefix: Int
    /// Offset of the segment's probabilities, (rows, H, prefix + rows), within a layer's probabilities.
    var probs: Int
}

/// A float pointer that may be captured by `parallelFor` bodies. Every use states which part of the
/// buffer each task writes; tasks never write the same element.
struct SharedPointer<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    init(_ base: UnsafeMutablePointer<Element>) { self.base = base }
}
typealias SharedFloats = SharedPointer<Float>

/// One float allocation carved into named views; grows when a batch needs more, never shrinks.
final class FloatArena {
    private(set) var base: UnsafeMutablePointer<Float>
    private(set) var capacity: Int
    init() {
        base = .allocate(capacity: 16)
        capacity = 16
    }
    /// Makes room for `count` floats; previous contents are lost when it grows.
    func reserve(_ count: Int) {
        if count <= capacity { return }
        base.deallocate()
        base = .allocate(capacity: count)
        capacity = count
    }
    deinit { base.deallocate() }
}

/// Hands out 64-byte-aligned offsets (in floats) for the views of an arena.
struct ArenaCarver {
    private(set) var total = 0
    mutating func take(_ count: Int) -> Int {
        let offset = total
        total += (count + 15) & ~15
        return offset
    }
}

/// The batch's rows, segments and targets, checked as `computeBatchNaive` checks them.
struct SharedPromptPlan {
    let P: Int
    /// Rows of the batch matrix, N = P + Σ T_b.
    let N: Int
    /// Segment 0 is the prompt, segment b + 1 example b.
    let segments: [AttentionSegment]
    /// Position of each batch row.
    let positions: [Int32]
    /// Batch rows whose logits are scored, in example then target order, and their tokens.
    let targetRows: [Int]
    let targetTokens: [Int32]
    /// Targets per example.
    let targetCounts: [Int]
    /// Floats of one layer's attention probabilities.
    let probsPerLayer: Int
    /// Σ per example of (P + T_b).
    let positionsProcessed: Int
    /// Tokens of the example rows, in batch order (row P + i holds `rowTokens[i]`).
    let rowTokens: [Int32]

    init(P: Int, examples: [PromptExample], vocab V: Int, maxPositions: Int, heads H: Int) throws(ModelError) {
        self.P = P
        var segments = [AttentionSegment(start: 0, rows: P, prefix: 0, probs: 0)]
        var probs = P * H * P
        var start = P
        var positions = (0 ..< P).map(Int32.init)
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
            segments.append(AttentionSegment(start: start, rows: rows, prefix: P, probs: probs))
            for target in example.targets {
                targetRows.append(target.row < P ? target.row : start + target.row - P)
                targetTokens.append(target.token)
            }
            counts.append(example.targets.count)
            rowTokens += example.tokens[0 ..< rows]
            positions += (P ..< T).map(Int32.init)
            probs += rows * H * T
            start += rows
            processed += T
        }
        N = start
        self.segments = segments
        self.positions = positions
        self.targetRows = targetRows
        self.targetTokens = targetTokens
        targetCounts = counts
        probsPerLayer = probs
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
        let P = plan.P, N = plan.N, R = plan.targetRows.count, B = plan.segments.count - 1
        let maxS = plan.segments.map { $0.prefix + $0.rows }.max() ?? 1
        let threads = self.threads

        // The arena: per-layer saved activations, then working buffers.
        var carve = ArenaCarver()
        // Saved by layer l's forward for its backward (offsets within the layer's block):
        let oXIn = carve.take(N * C)        // (N, C) layer input
        let oRstd1 = carve.take(N)          // (N)
        let oQ = carve.take(N * HD)         // (N, H, D) after RoPE
        let oK = carve.take(N * KV)         // (N, Hkv, D) after RoPE
        let oV = carve.take(N * KV)         // (N, Hkv, D)
        let oProbs = carve.take(plan.probsPerLayer)  // per segment (rows, H, prefix + rows)
        let oXMid = carve.take(N * C)       // (N, C) after the attention residual
        let oRstd2 = carve.take(N)          // (N)
        let oGate = carve.take(N * F)       // (N, F) pre-activation
        let oUp = carve.take(N * F)         // (N, F)
        let layerStride = carve.total
        var work = ArenaCarver()
        let wX = work.take(N * C)           // (N, C) residual stream
        let wH = work.take(N * C)           // (N, C) normed rows; in the backward d(normed rows)
        let wAtt = work.take(N * HD)        // (N, H*D) attention output; in the backward its gradient
        let wProj = work.take(N * C)        // (N, C) projection output
        let wAct = work.take(N * F)         // (N, F) silu(gate) * up; in the backward its gradient
        let wDX = work.take(N * C)          // (N, C) gradient of the residual stream
        let wDQ = work.take(N * HD)         // (N, H, D)
        let wDK = work.take(N * KV)         // (N, Hkv, D)
        let wDV = work.take(N * KV)         // (N, Hkv, D)
        let wDGate = work.take(N * F)       // (N, F)
        let wDUp = work.take(N * F)         // (N, F)
        let wExtK = work.take(max(1, B) * P * KV)  // (B, P, Hkv, D) each example's d(prompt keys)
        let wExtV = work.take(max(1, B) * P * KV)  // (B, P, Hkv, D) each example's d(prompt values)
        let attTasks = (B + 1) * max(H, Hkv)
        let wScratch = work.take(attTasks * maxS)  // one score row per attention task
        let wXSel = work.take(R * C)        // (R, C) final rows at the targets
        let wRstdF = work.take(R)           // (R)
        let wHF = work.take(R * C)          // (R, C) output-normed; in the backward its gradient
        let wLogits = work.take(R * V)      // (R, V) logits, then d(logits)
        let wDXSel = work.take(R * C)       // (R, C)
        let keptLayers = backward ? L : 1
        let arenaFloats = keptLayers * layerStride + work.total
        if arenaFloats > arena.capacity {
            try budget?.check([("weights", model.weightBytes), ("activations of \(N) positions", arenaFloats * MemoryLayout<Float>.size)],
                              for: "a batch of \(B) examples")
        }
        arena.reserve(arenaFloats)
        let layersBase = arena.base
        let w = arena.base + keptLayers * layerStride
        let x = w + wX, h = w + wH, att = w + wAtt, proj = w + wProj, act = w + wAct
        let dx = w + wDX, dq = w + wDQ, dk = w + wDK, dv = w + wDV, dgate = w + wDGate, dup = w + wDUp
        let extK = w + wExtK, extV = w + wExtV, scratch = w + wScratch
        let xSel = w + wXSel, rstdF = w + wRstdF, hF = w + wHF, logits = w + wLogits, dxSel = w + wDXSel
        let eps = cfg.rmsNormEps

        // Input rows: the prompt, then each example's token embeddings.
        prompt.withUnsafeBufferPointer { x.update(from: $0.baseAddress!, count: P * C) }
        for (i, id) in plan.rowTokens.enumerated() {
            model.tokenEmbedding.dequantizeRow(Int(id), into: x + (P + i) * C)
        }

        // Forward, keeping activations.
        for (l, layer) in model.layers.enumerated() {
            let s = layersBase + (backward ? l : 0) * layerStride
            let xIn = s + oXIn, rstd1 = s + oRstd1, q = s + oQ, k = s + oK, v = s + oV, probs = s + oProbs
            let xMid = s + oXMid, rstd2 = s + oRstd2, gate = s + oGate, up = s + oUp
            xIn.update(from: x, count: N * C)
            normRowsParallel(N, C, threads, out: h, rstd1, x) { o, r, xx, t in
                rmsnormForward(out: o, rstd: r, x: xx, weight: layer.attnNorm, T: t, C: C, eps: eps)
            }
            linearForward(out: q, x: h, M: N, layer: layer.q, threads: threads)
            linearForward(out: k, x: h, M: N, layer: layer.k, threads: threads)
            linearForward(out: v, x: h, M: N, layer: layer.v, threads: threads)
            rope.apply(q, T: N, heads: H, headSize: D, positions: plan.positions)
            rope.apply(k, T: N, heads: Hkv, headSize: D, positions: plan.positions)
            attentionForwardTasks(plan: plan, out: att, probs: probs, q: q, k: k, v: v, scratch: scratch, maxS: maxS)
            linearForward(out: proj, x: att, M: N, layer: layer.o, threads: threads)
            addInPlace(x, proj, N * C)
            xMid.update(from: x, count: N * C)
            normRowsParallel(N, C, threads, out: h, rstd2, x) { o, r, xx, t in
                rmsnormForward(out: o, rstd: r, x: xx, weight: layer.ffnNorm, T: t, C: C, eps: eps)
            }
            linearForward(out: gate, x: h, M: N, layer: layer.gate, threads: threads)
            linearForward(out: up, x: h, M: N, layer: layer.up, threads: threads)
            gluRowsParallel(N, F, threads, out: act, gate, up) { o, g, u, t in swigluForward(out: o, gate: g, up: u, count: t * F) }
            linearForward(out: proj, x: act, M: N, layer: layer.down, threads: threads)
            addInPlace(x, proj, N * C)
        }

        if !backward {
            return forwardHeadLosses(x: x, plan: plan, xSel: xSel, rstd: rstdF, hF: hF, logits: logits)
        }

        // Head at the target rows only, loss and d(logits) = (softmax - onehot) / R.
        for (i, r) in plan.targetRows.enumerated() { (xSel + i * C).update(from: x + r * C, count: C) }
        rmsnormForward(out: hF, rstd: rstdF, x: xSel, weight: model.outputNorm, T: R, C: C, eps: eps)
        linearForward(out: logits, x: hF, M: R, layer: model.output, threads: threads)
        // One task per target row: each writes its row of d(logits) and its loss.
        let lossBuffer = UnsafeMutablePointer<Double>.allocate(capacity: R)
        defer { lossBuffer.deallocate() }
        let lossOut = SharedPointer(lossBuffer), logitRows = SharedFloats(logits)
        let tokens = plan.targetTokens
        parallelFor(R, threads: threads) { i in
            let row = logitRows.base + i * V
            let t = Int(tokens[i])
            var m = -Float.infinity
            for j in 0 ..< V { m = max(m, row[j]) }
            let logit = row[t]
            var sum: Double = 0
            for j in 0 ..< V {
                let e = expf(row[j] - m)
                row[j] = e
                sum += Double(e)
            }
            lossOut.base[i] = Double(m) + _log(sum) - Double(logit)
            let scale = Float(1 / (sum * Double(R)))
            for j in 0 ..< V { row[j] *= scale }
            row[t] -= 1 / Float(R)
        }
        let losses = Array(UnsafeBufferPointer(start: lossBuffer, count: R))

        // Backward of the head.
        hF.update(repeating: 0, count: R * C)
        linearBackward(dx: hF, dy: logits, M: R, layer: model.output, threads: threads)
        dxSel.update(repeating: 0, count: R * C)
        rmsnormBackward(dx: dxSel, dy: hF, x: xSel, rstd: rstdF, weight: model.outputNorm, T: R, C: C)
        dx.update(repeating: 0, count: N * C)
        for (i, r) in plan.targetRows.enumerated() { addInPlace(dx + r * C, dxSel + i * C, C) }

        // Backward through the blocks; dx is the gradient of each block's output, then of its input.
        for (l, layer) in model.layers.enumerated().reversed() {
            let s = layersBase + l * layerStride
            let xIn = s + oXIn, rstd1 = s + oRstd1, q = s + oQ, k = s + oK, v = s + oV, probs = s + oProbs
            let xMid = s + oXMid, rstd2 = s + oRstd2, gate = s + oGate, up = s + oUp
            // x_out = x_mid + down(silu(gate) * up)
            let dact = act
            dact.update(repeating: 0, count: N * F)
            linearBackward(dx: dact, dy: dx, M: N, layer: layer.down, threads: threads)
            gluBackRowsParallel(N, F, threads, out: dgate, dup, dact, gate, up) { dg, du, da, g, u, t in
                swigluBackward(dgate: dg, dup: du, dout: da, gate: g, up: u, count: t * F)
            }
            let dh = h
            dh.update(repeating: 0, count: N * C)
            linearBackward(dx: dh, dy: dgate, M: N, layer: layer.gate, threads: threads)
            linearBackward(dx: dh, dy: dup, M: N, layer: layer.up, threads: threads)
            normBackRowsParallel(N, C, threads, out: dx, dh, xMid, rstd2) { d, g, xx, r, t in  // dx becomes d(x_mid)
                rmsnormBackward(dx: d, dy: g, x: xx, rstd: r, weight: layer.ffnNorm, T: t, C: C)
            }
            // x_mid = x_in + o(attention(rope(q(h)), rope(k(h)), v(h)))
            let datt = att
            datt.update(repeating: 0, count: N * HD)
            linearBackward(dx: datt, dy: dx, M: N, layer: layer.o, threads: threads)
            dk.update(repeating: 0, count: N * KV)
            dv.update(repeating: 0, count: N * KV)
            extK.update(repeating: 0, count: B * P * KV)
            extV.update(repeating: 0, count: B * P * KV)
            attentionBackwardTasks(plan: plan, dq: dq, dk: dk, dv: dv, extK: extK, extV: extV, dout: datt, probs: probs,
                                   q: q, k: k, v: v, scratch: scratch, maxS: maxS)
            // The examples' gradients of the prompt's keys and values, in example order.
            for b in 0 ..< B {
                addInPlace(dk, extK + b * P * KV, P * KV)
                addInPlace(dv, extV + b * P * KV, P * KV)
            }
            rope.apply(dq, T: N, heads: H, headSize: D, positions: plan.positions, inverse: true)
            rope.apply(dk, T: N, heads: Hkv, headSize: D, positions: plan.positions, inverse: true)
            dh.update(repeating: 0, count: N * C)
            linearBackward(dx: dh, dy: dq, M: N, layer: layer.q, threads: threads)
            linearBackward(dx: dh, dy: dk, M: N, layer: layer.k, threads: threads)
            linearBackward(dx: dh, dy: dv, M: N, layer: layer.v, threads: threads)
            normBackRowsParallel(N, C, threads, out: dx, dh, xIn, rstd1) { d, g, xx, r, t in  // dx becomes d(x_in)
                rmsnormBackward(dx: d, dy: g, x: xx, rstd: r, weight: layer.attnNorm, T: t, C: C)
            }
        }

        return BatchLossGradient(loss: losses.reduce(0, +) / Double(R), targetLosses: split(losses, plan.targetCounts),
                                 gradient: Array(UnsafeBufferPointer(start: dx, count: P * C)),
                                 positionsProcessed: plan.positionsProcessed)
    }

    /// The forward-only head: logits once per distinct target row (several targets on one row, such as the
    /// one-token choices of a classification row, share it), then each target's loss computed as the
    /// training head computes it (same bits).
    private func forwardHeadLosses(x: UnsafeMutablePointer<Float>, plan: SharedPromptPlan, xSel: UnsafeMutablePointer<Float>,
                                   rstd: UnsafeMutablePointer<Float>, hF: UnsafeMutablePointer<Float>,
                                   logits: UnsafeMutablePointer<Float>) -> BatchLossGradient {
        let C = model.config.hiddenSize, V = model.config.vocabSize
        var slotOfRow: [Int: Int] = [:], rows: [Int] = [], slots: [Int] = []
        for r in plan.targetRows {
            if let slot = slotOfRow[r] { slots.append(slot); continue }
            slotOfRow[r] = rows.count
            slots.append(rows.count)
            rows.append(r)
        }
        let U = rows.count, R = slots.count
        for (i, r) in rows.enumerated() { (xSel + i * C).update(from: x + r * C, count: C) }
        rmsnormForward(out: hF, rstd: rstd, x: xSel, weight: model.outputNorm, T: U, C: C, eps: model.config.rmsNormEps)
        linearForward(out: logits, x: hF, M: U, layer: model.output, threads: threads)
        // Per row: the maximum and the sum of exp(logit - maximum), accumulated as the training head does.
        let stats = UnsafeMutablePointer<(Float, Double)>.allocate(capacity: U)
        defer { stats.deallocate() }
        let statsOut = SharedPointer(stats), logitRows = SharedFloats(logits)
        parallelFor(U, threads: threads) { i in
            let row = logitRows.base + i * V
            var m = -Float.infinity
            for j in 0 ..< V { m = max(m, row[j]) }
            var sum: Double = 0
            for j in 0 ..< V { sum += Double(expf(row[j] - m)) }
            statsOut.base[i] = (m, sum)
        }
        let losses = (0 ..< R).map { i -> Double in
            let (m, sum) = stats[slots[i]]
            return Double(m) + _log(sum) - Double(logits[slots[i] * V + Int(plan.targetTokens[i])])
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

    /// Attention of every (segment, query head) pair, one task each.
    private func attentionForwardTasks(plan: SharedPromptPlan, out: UnsafeMutablePointer<Float>,
                                       probs: UnsafeMutablePointer<Float>, q: UnsafeMutablePointer<Float>,
                                       k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                                       scratch: UnsafeMutablePointer<Float>, maxS: Int) {
        let cfg = model.config
        let D = cfg.headDim, H = cfg.numAttentionHeads, Hkv = cfg.numKeyValueHeads
        let HD = H * D, KV = Hkv * D
        let segments = plan.segments
        // Task (segment, head) writes only that head's columns of the segment's rows of `out` and `probs`,
        // and its own scratch row.
        let o = SharedFloats(out), p = SharedFloats(probs), qs = SharedFloats(q), ks = SharedFloats(k)
        let vs = SharedFloats(v), sc = SharedFloats(scratch)
        parallelFor(segments.count * H, threads: threads) { task in
            let seg = segments[task / H], head = task % H
            if seg.rows == 0 { return }
            segmentAttentionForward(out: o.base + seg.start * HD, probs: p.base + seg.probs, q: qs.base + seg.start * HD,
                                    k: ks.base + seg.start * KV, v: vs.base + seg.start * KV, prefixK: ks.base,
                                    prefixV: vs.base, prefix: seg.prefix, T: seg.rows, H: H, Hkv: Hkv, D: D,
                                    head: head, scratch: sc.base + task * maxS)
        }
    }

    /// Attention backward of every (segment, key/value head) pair, one task each.
    private func attentionBackwardTasks(plan: SharedPromptPlan, dq: UnsafeMutablePointer<Float>,
                                        dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                        extK: UnsafeMutablePointer<Float>, extV: UnsafeMutablePointer<Float>,
                                        dout: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                                        q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>,
                                        v: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, maxS: Int) {
        let cfg = model.config
        let D = cfg.headDim, H = cfg.numAttentionHeads, Hkv = cfg.numKeyValueHeads
        let HD = H * D, KV = Hkv * D, P = plan.P
        let segments = plan.segments
        // Task (segment, kv head) writes that KV head's query group of the segment's rows of dq, that KV
        // head's columns of the segment's rows of dk/dv, and of its example's slot of extK/extV (the prompt
        // segment writes the prompt rows of dk/dv directly); and its own scratch row.
        let gq = SharedFloats(dq), gk = SharedFloats(dk), gv = SharedFloats(dv), ek = SharedFloats(extK)
        let ev = SharedFloats(extV), go = SharedFloats(dout), p = SharedFloats(probs), qs = SharedFloats(q)
        let ks = SharedFloats(k), vs = SharedFloats(v), sc = SharedFloats(scratch)
        parallelFor(segments.count * Hkv, threads: threads) { task in
            let index = task / Hkv, kvHead = task % Hkv
            let seg = segments[index]
            if seg.rows == 0 { return }
            let slot = max(0, index - 1) * P * KV
            segmentAttentionBackward(dq: gq.base + seg.start * HD, dk: gk.base + seg.start * KV, dv: gv.base + seg.start * KV,
                                     dPrefixK: ek.base + slot, dPrefixV: ev.base + slot, dout: go.base + seg.start * HD,
                                     probs: p.base + seg.probs, q: qs.base + seg.start * HD, k: ks.base + seg.start * KV,
                                     v: vs.base + seg.start * KV, prefixK: ks.base, prefixV: vs.base, prefix: seg.prefix,
                                     T: seg.rows, H: H, Hkv: Hkv, D: D, kvHead: kvHead, scratch: sc.base + task * maxS)
        }
    }
}

/// Runs `body` on chunks of `rows` rows, one chunk per thread, with every pointer advanced to the chunk's
/// first row: pointers of (rows, width) buffers, then the ones of (rows) buffers (rstd), in the order given.
/// Each chunk writes only its own rows, so the split does not change the result.
private func chunks(_ rows: Int, _ threads: Int, _ body: @Sendable (_ first: Int, _ count: Int) -> Void) {
    let n = max(1, min(threads, rows / 4))
    let per = (rows + n - 1) / n
    parallelFor(n, threads: threads) { c in
        let r0 = c * per, r1 = min(rows, r0 + per)
        if r0 < r1 { body(r0, r1 - r0) }
    }
}

/// (rows, width) output, (rows) rstd, (rows, width) input.
private func normRowsParallel(_ rows: Int, _ width: Int, _ threads: Int, out: UnsafeMutablePointer<Float>,
                          _ rstd: UnsafeMutablePointer<Float>, _ x: UnsafeMutablePointer<Float>,
                          _ body: @Sendable (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) {
    let o = SharedFloats(out), r = SharedFloats(rstd), xs = SharedFloats(x)
    chunks(rows, threads) { first, count in body(o.base + first * width, r.base + first, xs.base + first * width, count) }
}

/// Three (rows, width) buffers.
private func gluRowsParallel(_ rows: Int, _ width: Int, _ threads: Int, out: UnsafeMutablePointer<Float>,
                          _ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>,
                          _ body: @Sendable (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) {
    let o = SharedFloats(out), sa = SharedFloats(a), sb = SharedFloats(b)
    chunks(rows, threads) { first, count in body(o.base + first * width, sa.base + first * width, sb.base + first * width, count) }
}

/// Five (rows, width) buffers.
private func gluBackRowsParallel(_ rows: Int, _ width: Int, _ threads: Int, out: UnsafeMutablePointer<Float>,
                          _ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                          _ d: UnsafeMutablePointer<Float>,
                          _ body: @Sendable (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                             UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) {
    let o = SharedFloats(out), sa = SharedFloats(a), sb = SharedFloats(b), sc = SharedFloats(c), sd = SharedFloats(d)
    chunks(rows, threads) { first, count in
        let at = first * width
        body(o.base + at, sa.base + at, sb.base + at, sc.base + at, sd.base + at, count)
    }
}

/// (rows, width) output, (rows, width) gradient, (rows, width) input, (rows) rstd: the rmsnorm backward.
private func normBackRowsParallel(_ rows: Int, _ width: Int, _ threads: Int, out: UnsafeMutablePointer<Float>,
                          _ dy: UnsafeMutablePointer<Float>, _ x: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                          _ body: @Sendable (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                             UnsafeMutablePointer<Float>, Int) -> Void) {
    let o = SharedFloats(out), g = SharedFloats(dy), xs = SharedFloats(x), r = SharedFloats(rstd)
    chunks(rows, threads) { first, count in
        body(o.base + first * width, g.base + first * width, xs.base + first * width, r.base + first, count)
    }
}

/// a[i] += b[i].
@inline(__always)
func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
    axpyF32(a, b, 1, n)
}

// MARK: attention over a segment that sees a shared prefix

/// Attention of query head `head` for one segment: `T` rows at positions `prefix ..< prefix + T` that see
/// the `prefix` rows of `prefixK`/`prefixV` and then their own rows up to themselves (the math of
/// `attentionForward`, with the dot products and sums vectorised).
/// - Parameters:
///   - out: (T, H, D), head `head` written.
///   - probs: (T, H, S), S = prefix + T, head `head` written (zeros past each row's causal edge).
///   - q: (T, H, D) rotated queries; k, v: (T, Hkv, D) the segment's own rotated keys and values.
///   - prefixK, prefixV: (prefix, Hkv, D).
///   - scratch: at least S floats.
func segmentAttentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
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
            let score = dotF32(qv, kv, D) * scale
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
        let pr = probs + (t * H + head) * S
        o.update(repeating: 0, count: D)
        for s in 0 ..< visible {
            let p = scratch[s] * inv
            pr[s] = p
            let vv = s < prefix ? prefixV + s * KV + kvh * D : v + (s - prefix) * KV + kvh * D
            axpyF32(o, vv, p, D)
        }
        for s in visible ..< S { pr[s] = 0 }
    }
}

/// Backward of `segmentAttentionForward` for the query group of KV head `kvHead`:
///
///   dv[s] += Σ_t p[t,s] dout[t];  dp[t,s] = dout[t] · v[s];  ds[t,s] = p[t,s] (dp[t,s] - Σ_s' p[t,s'] dp[t,s'])
///   dq[t] = scale Σ_s ds[t,s] k[s];  dk[s] += scale Σ_t ds[t,s] q[t]
/// - Parameters:
///   - dq: (T, H, D), the group's heads written.
///   - dk, dv: (T, Hkv, D) of the segment's own rows, head `kvHead` accumulated into.
///   - dPrefixK, dPrefixV: (prefix, Hkv, D) of the prefix rows, head `kvHead` accumulated into.
///   - dout: (T, H, D); probs: (T, H, S) as the forward saved them; the rest as in the forward.
///   - scratch: at least S floats.
func segmentAttentionBackward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
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
