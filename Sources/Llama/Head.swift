// The output head, forward and backward side by side: the final norm and the vocabulary projection of the
// rows whose logits are wanted (the last row when decoding, the target rows when training or scoring).
//
//   sel = x[rows];  n = rmsnorm(sel) · output_norm;  logits = n Woutᵀ      (R, V)

extension ModelPass {
    /// Logits of `rows` of `x` (N, C), (R, V) into `logits`.
    /// - Parameters:
    ///   - selected: (R, C) the selected rows (kept for the backward).
    ///   - rstd: (R) kept for the backward, or nil.
    ///   - normed: (R, C) scratch.
    func headForward(x: UnsafePointer<Float>, rows: [Int], selected: UnsafeMutablePointer<Float>,
                     rstd: UnsafeMutablePointer<Float>?, normed: UnsafeMutablePointer<Float>,
                     logits: UnsafeMutablePointer<Float>) {
        let C = config.hiddenSize, R = rows.count
        if R == 0 { return }
        for (i, r) in rows.enumerated() { (selected + i * C).update(from: x + r * C, count: C) }
        rmsnormForward(out: normed, rstd: rstd, x: selected, weight: model.outputNorm, T: R, C: C, eps: config.rmsNormEps)
        linearForward(out: logits, x: normed, M: R, layer: model.output, threads: threads, precision: precision)
    }

    /// Backward of `headForward`: adds d(loss)/d(x) of the selected rows into `dx` (N, C), from `dlogits`
    /// (R, V). `dNormed` and `dSelected` are (R, C) scratch.
    func headBackward(dx: UnsafeMutablePointer<Float>, rows: [Int], dlogits: UnsafePointer<Float>,
                      selected: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                      dNormed: UnsafeMutablePointer<Float>, dSelected: UnsafeMutablePointer<Float>) {
        let C = config.hiddenSize, R = rows.count
        dNormed.update(repeating: 0, count: R * C)
        linearBackward(dx: dNormed, dy: dlogits, M: R, layer: model.output, threads: threads)
        dSelected.update(repeating: 0, count: R * C)
        rmsnormBackward(dx: dSelected, dy: dNormed, x: selected, rstd: rstd, weight: model.outputNorm, T: R, C: C)
        for (i, r) in rows.enumerated() { addInPlace(dx + r * C, dSelected + i * C, C) }
    }

    /// Every block forward over `x` (N, C) in place, with the buffers `buffers(l)` for layer l.
    func blocksForward(x: UnsafeMutablePointer<Float>, layout: BatchLayout, buffers: (Int) -> BlockBuffers) {
        for l in 0 ..< model.layers.count { blockForward(l, x: x, layout: layout, buffers(l)) }
    }
}

extension ModelPass {
    /// An inference pass: every block over `x` (N, C) in place (keys and values appended to the segments'
    /// caches), then the logits of `logitRows`, (R, V). The working memory lives for the call only, so a
    /// session that prefilled a long prompt does not keep that much while it decodes.
    func infer(x: inout [Float], layout: BatchLayout, logitRows: [Int]) -> [Float] {
        let cfg = config
        let N = layout.rows, C = cfg.hiddenSize, HD = cfg.numAttentionHeads * cfg.headDim
        let KV = cfg.numKeyValueHeads * cfg.headDim, F = cfg.intermediateSize, R = logitRows.count
        var carve = ArenaCarver()
        let oH = carve.take(N * C), oQ = carve.take(N * HD), oK = carve.take(N * KV), oV = carve.take(N * KV)
        let oAtt = carve.take(N * HD), oProj = carve.take(N * C), oGate = carve.take(N * F), oUp = carve.take(N * F)
        let oAct = carve.take(N * F), oScratch = carve.take(BlockBuffers.scratchFloats(layout, heads: cfg.numAttentionHeads))
        let oSelected = carve.take(R * C), oNormed = carve.take(R * C)
        let w = UnsafeMutablePointer<Float>.allocate(capacity: max(1, carve.total))
        defer { w.deallocate() }
        let buffers = BlockBuffers(h: w + oH, q: w + oQ, k: w + oK, v: w + oV, att: w + oAtt, proj: w + oProj,
                                   gate: w + oGate, up: w + oUp, act: w + oAct, scratch: w + oScratch)
        var logits = [Float](repeating: 0, count: R * cfg.vocabSize)
        x.withUnsafeMutableBufferPointer { xb in
            blocksForward(x: xb.baseAddress!, layout: layout) { _ in buffers }
            logits.withUnsafeMutableBufferPointer { lb in
                headForward(x: xb.baseAddress!, rows: logitRows, selected: w + oSelected, rstd: nil, normed: w + oNormed,
                            logits: lb.baseAddress!)
            }
        }
        return logits
    }
}
