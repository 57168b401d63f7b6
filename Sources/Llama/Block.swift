// The transformer block: its forward and its backward, side by side (llm.c style). Every pass over the
// model — prefill, decoding, batched decoding, the training forward and backward, forward-only scoring —
// runs these two functions over a `BatchLayout`; callers differ only in the segments they build and the
// buffers they hand in (scratch for inference, per-layer saved activations for training).
//
// The llama block (llama, mistral, qwen2), for N rows x:
//
//   h    = rmsnorm(x) · attn_norm                    (N, C)      saved: x_in, rstd1
//   q, k, v = h Wqᵀ (+bq), h Wkᵀ (+bk), h Wvᵀ (+bv)   (N, H·D), (N, Hkv·D) ×2
//   q, k = rope(q), rope(k)                                       saved: q, k, v
//   att  = attention(q, [context; k], [context; v])  (N, H·D)    saved: probs
//   x    = x + att Woᵀ                                            saved: x_mid
//   h    = rmsnorm(x) · ffn_norm                                  saved: rstd2
//   act  = silu(h Wgateᵀ) ⊙ (h Wupᵀ)                 (N, F)      saved: gate, up
//   x    = x + act Wdownᵀ
//
// Architecture seams (where variants plug in, forward and backward at the same named step):
//   - input scale        gemma multiplies the embedded rows by sqrt(C): the callers' input rows, before block 0
//   - norm placement     post-attention / post-feed-forward norms (gemma2/3) wrap `att Woᵀ` and `act Wdownᵀ`
//                        before their residual adds: step "attention output" and "feed-forward output"
//   - QK-norm            per-head rmsnorm of q and k before rope (qwen3, gemma3): step "queries and keys"
//   - attention pattern  sliding-window layers (gemma3, mistral) bound the visible range in `attentionForward`;
//                        query scaling and logit soft-capping are the `scale` line there
//   - activation         GeGLU (gemma) replaces silu in `swigluForward` / `swigluBackward`: step "feed-forward"
//   - context            deep prompts supply per-layer keys/values as a segment context (Batch.swift)
// Each is a property of the model's configuration read at that step; nothing else in the pass changes.

/// Where one block's forward writes, for the N rows of a layout. Inference points every view into scratch
/// and leaves the optional ones nil; training points q, k, v, gate, up and the optional views into the
/// layer's saved slot.
struct BlockBuffers {
    var h: UnsafeMutablePointer<Float>        // (N, C) normed rows
    var q: UnsafeMutablePointer<Float>        // (N, H, D) after rope
    var k: UnsafeMutablePointer<Float>        // (N, Hkv, D) after rope
    var v: UnsafeMutablePointer<Float>        // (N, Hkv, D)
    var att: UnsafeMutablePointer<Float>      // (N, H·D) attention output
    var proj: UnsafeMutablePointer<Float>     // (N, C) output projections
    var gate: UnsafeMutablePointer<Float>     // (N, F) pre-activation
    var up: UnsafeMutablePointer<Float>       // (N, F)
    var act: UnsafeMutablePointer<Float>      // (N, F) silu(gate) ⊙ up
    var scratch: UnsafeMutablePointer<Float>  // (segments · H, maxVisible) attention score rows
    // Kept for the backward only (nil: not kept).
    var xIn: UnsafeMutablePointer<Float>?     // (N, C) block input
    var rstd1: UnsafeMutablePointer<Float>?   // (N)
    var probs: UnsafeMutablePointer<Float>?   // (probsPerLayer) per segment (rows, H, prefix + rows)
    var xMid: UnsafeMutablePointer<Float>?    // (N, C) after the attention residual
    var rstd2: UnsafeMutablePointer<Float>?   // (N)

    /// Floats of scratch the attention of `layout` needs with `heads` tasks per segment (query heads for the
    /// forward, key/value heads for the backward).
    static func scratchFloats(_ layout: BatchLayout, heads: Int) -> Int { layout.segments.count * heads * layout.maxVisible }
}

/// Where one block's backward writes, for the N rows of a layout; every view is overwritten.
struct BlockGradients {
    var dh: UnsafeMutablePointer<Float>       // (N, C)
    var datt: UnsafeMutablePointer<Float>     // (N, H·D)
    var dq: UnsafeMutablePointer<Float>       // (N, H, D)
    var dk: UnsafeMutablePointer<Float>       // (N, Hkv, D)
    var dv: UnsafeMutablePointer<Float>       // (N, Hkv, D)
    var dact: UnsafeMutablePointer<Float>     // (N, F)
    var dgate: UnsafeMutablePointer<Float>    // (N, F)
    var dup: UnsafeMutablePointer<Float>      // (N, F)
    var contextK: UnsafeMutablePointer<Float> // (contextGradientFloats) d(context keys) per segment
    var contextV: UnsafeMutablePointer<Float> // (contextGradientFloats) d(context values) per segment
    var scratch: UnsafeMutablePointer<Float>  // (segments · Hkv, maxVisible)
}

/// What every pass over one model shares: the weights, the rotary table, threads and matmul precision.
struct ModelPass {
    let model: LlamaModel
    let rope: RoPETable
    let threads: Int
    let precision: MatmulPrecision

    var config: LlamaConfig { model.config }

    // MARK: forward

    /// Block `l` over the rows `x` (N, C) of `layout`, in place.
    func blockForward(_ l: Int, x: UnsafeMutablePointer<Float>, layout: BatchLayout, _ b: BlockBuffers) {
        let layer = model.layers[l], cfg = config
        let N = layout.rows, C = cfg.hiddenSize, D = cfg.headDim, H = cfg.numAttentionHeads
        let Hkv = cfg.numKeyValueHeads, F = cfg.intermediateSize, eps = cfg.rmsNormEps
        b.xIn?.update(from: x, count: N * C)
        // Attention norm.
        rmsnormRows(out: b.h, rstd: b.rstd1, x: x, weight: layer.attnNorm, rows: N, C: C, eps: eps)
        // Queries and keys (and values).
        linearForward(out: b.q, x: b.h, M: N, layer: layer.q, threads: threads, precision: precision)
        linearForward(out: b.k, x: b.h, M: N, layer: layer.k, threads: threads, precision: precision)
        linearForward(out: b.v, x: b.h, M: N, layer: layer.v, threads: threads, precision: precision)
        rope.apply(b.q, T: N, heads: H, headSize: D, positions: layout.positions)
        rope.apply(b.k, T: N, heads: Hkv, headSize: D, positions: layout.positions)
        // Attention.
        appendToCaches(l, layout: layout, k: b.k, v: b.v)
        attentionTasks(l, layout: layout, b)
        // Attention output.
        linearForward(out: b.proj, x: b.att, M: N, layer: layer.o, threads: threads, precision: precision)
        addInPlace(x, b.proj, N * C)
        b.xMid?.update(from: x, count: N * C)
        // Feed-forward.
        rmsnormRows(out: b.h, rstd: b.rstd2, x: x, weight: layer.ffnNorm, rows: N, C: C, eps: eps)
        linearForward(out: b.gate, x: b.h, M: N, layer: layer.gate, threads: threads, precision: precision)
        linearForward(out: b.up, x: b.h, M: N, layer: layer.up, threads: threads, precision: precision)
        let act = SharedFloats(b.act), gate = SharedFloats(b.gate), up = SharedFloats(b.up)
        parallelRows(N, threads: threads) { r, n in
            swigluForward(out: act.base + r * F, gate: gate.base + r * F, up: up.base + r * F, count: n * F)
        }
        // Feed-forward output.
        linearForward(out: b.proj, x: b.act, M: N, layer: layer.down, threads: threads, precision: precision)
        addInPlace(x, b.proj, N * C)
    }

    /// Writes each cached segment's own keys and values after its context positions.
    private func appendToCaches(_ l: Int, layout: BatchLayout, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) {
        let KV = config.numKeyValueHeads * config.headDim
        for (seg, context) in zip(layout.segments, layout.contexts) {
            guard case .cache(let cache) = context else { continue }
            (cache.keys[l] + seg.prefix * KV).update(from: k + seg.start * KV, count: seg.rows * KV)
            (cache.values[l] + seg.prefix * KV).update(from: v + seg.start * KV, count: seg.rows * KV)
        }
    }

    /// The keys and values segment `index` sees before its own rows at layer `l`.
    private func context(_ index: Int, layer l: Int, layout: BatchLayout, k: UnsafeMutablePointer<Float>,
                         v: UnsafeMutablePointer<Float>) -> (keys: SharedFloats, values: SharedFloats) {
        let KV = config.numKeyValueHeads * config.headDim
        switch layout.contexts[index] {
        case .none: return (SharedFloats(k), SharedFloats(v))  // never read: prefix 0
        case .segment(let j):
            let start = layout.segments[j].start * KV
            return (SharedFloats(k + start), SharedFloats(v + start))
        case .cache(let cache): return (SharedFloats(cache.keys[l]), SharedFloats(cache.values[l]))
        }
    }

    /// Attention of every (segment, query head) pair, one task each; a task writes only that head's columns
    /// of the segment's rows of `att` and `probs`, and its own scratch row.
    private func attentionTasks(_ l: Int, layout: BatchLayout, _ b: BlockBuffers) {
        let cfg = config
        let D = cfg.headDim, H = cfg.numAttentionHeads, Hkv = cfg.numKeyValueHeads
        let HD = H * D, KV = Hkv * D, S = layout.maxVisible
        let segments = layout.segments
        let contexts = segments.indices.map { context($0, layer: l, layout: layout, k: b.k, v: b.v) }
        let o = SharedFloats(b.att), p = b.probs.map(SharedFloats.init), q = SharedFloats(b.q)
        let k = SharedFloats(b.k), v = SharedFloats(b.v), sc = SharedFloats(b.scratch)
        parallelFor(segments.count * H, threads: threads) { task in
            let index = task / H, head = task % H
            let seg = segments[index]
            if seg.rows == 0 { return }
            attentionForward(out: o.base + seg.start * HD, probs: p.map { $0.base + seg.probs },
                             q: q.base + seg.start * HD, k: k.base + seg.start * KV, v: v.base + seg.start * KV,
                             prefixK: contexts[index].keys.base, prefixV: contexts[index].values.base,
                             prefix: seg.prefix, T: seg.rows, H: H, Hkv: Hkv, D: D, head: head,
                             scratch: sc.base + task * S)
        }
    }

    // MARK: backward

    /// Backward of `blockForward(l)`: `dx` (N, C) holds the gradient of the block's output on entry and that
    /// of its input on exit. `saved` is what the forward kept (every optional view set); the gradients of
    /// `.segment` contexts are added to the rows of the segment they name, in segment order.
    func blockBackward(_ l: Int, dx: UnsafeMutablePointer<Float>, layout: BatchLayout, saved a: BlockBuffers,
                       _ g: BlockGradients) {
        let layer = model.layers[l], cfg = config
        let N = layout.rows, C = cfg.hiddenSize, D = cfg.headDim, H = cfg.numAttentionHeads
        let Hkv = cfg.numKeyValueHeads, F = cfg.intermediateSize
        let HD = H * D, KV = Hkv * D
        // Feed-forward output: x_out = x_mid + act Wdownᵀ.
        g.dact.update(repeating: 0, count: N * F)
        linearBackward(dx: g.dact, dy: dx, M: N, layer: layer.down, threads: threads)
        // Feed-forward: act = silu(gate) ⊙ up, gate/up = h Wᵀ.
        let dg = SharedFloats(g.dgate), du = SharedFloats(g.dup), da = SharedFloats(g.dact)
        let gate = SharedFloats(a.gate), up = SharedFloats(a.up)
        parallelRows(N, threads: threads) { r, n in
            swigluBackward(dgate: dg.base + r * F, dup: du.base + r * F, dout: da.base + r * F, gate: gate.base + r * F,
                           up: up.base + r * F, count: n * F)
        }
        g.dh.update(repeating: 0, count: N * C)
        linearBackward(dx: g.dh, dy: g.dgate, M: N, layer: layer.gate, threads: threads)
        linearBackward(dx: g.dh, dy: g.dup, M: N, layer: layer.up, threads: threads)
        rmsnormRowsBackward(dx: dx, dy: g.dh, x: a.xMid!, rstd: a.rstd2!, weight: layer.ffnNorm, rows: N, C: C)  // d(x_mid)
        // Attention output: x_mid = x_in + att Woᵀ.
        g.datt.update(repeating: 0, count: N * HD)
        linearBackward(dx: g.datt, dy: dx, M: N, layer: layer.o, threads: threads)
        // Attention.
        g.dk.update(repeating: 0, count: N * KV)
        g.dv.update(repeating: 0, count: N * KV)
        g.contextK.update(repeating: 0, count: layout.contextGradientFloats)
        g.contextV.update(repeating: 0, count: layout.contextGradientFloats)
        attentionBackwardTasks(l, layout: layout, saved: a, g)
        for (seg, context) in zip(layout.segments, layout.contexts) {
            guard case .segment(let j) = context else { continue }
            let rows = layout.segments[j].start * KV
            addInPlace(g.dk + rows, g.contextK + seg.contextGradient, seg.prefix * KV)
            addInPlace(g.dv + rows, g.contextV + seg.contextGradient, seg.prefix * KV)
        }
        // Queries and keys.
        rope.apply(g.dq, T: N, heads: H, headSize: D, positions: layout.positions, inverse: true)
        rope.apply(g.dk, T: N, heads: Hkv, headSize: D, positions: layout.positions, inverse: true)
        g.dh.update(repeating: 0, count: N * C)
        linearBackward(dx: g.dh, dy: g.dq, M: N, layer: layer.q, threads: threads)
        linearBackward(dx: g.dh, dy: g.dk, M: N, layer: layer.k, threads: threads)
        linearBackward(dx: g.dh, dy: g.dv, M: N, layer: layer.v, threads: threads)
        // Attention norm.
        rmsnormRowsBackward(dx: dx, dy: g.dh, x: a.xIn!, rstd: a.rstd1!, weight: layer.attnNorm, rows: N, C: C)  // d(x_in)
    }

    /// Attention backward of every (segment, key/value head) pair, one task each: a task writes that head's
    /// query group of the segment's rows of dq, that head's columns of the segment's rows of dk/dv and of its
    /// context-gradient slot, and its own scratch row.
    private func attentionBackwardTasks(_ l: Int, layout: BatchLayout, saved a: BlockBuffers, _ g: BlockGradients) {
        let cfg = config
        let D = cfg.headDim, H = cfg.numAttentionHeads, Hkv = cfg.numKeyValueHeads
        let HD = H * D, KV = Hkv * D, S = layout.maxVisible
        let segments = layout.segments
        for context in layout.contexts {
            if case .cache = context { preconditionFailure("no backward through a KV cache") }
        }
        let contexts = segments.indices.map { context($0, layer: l, layout: layout, k: a.k, v: a.v) }
        let gq = SharedFloats(g.dq), gk = SharedFloats(g.dk), gv = SharedFloats(g.dv), ck = SharedFloats(g.contextK)
        let cv = SharedFloats(g.contextV), go = SharedFloats(g.datt), p = SharedFloats(a.probs!), q = SharedFloats(a.q)
        let k = SharedFloats(a.k), v = SharedFloats(a.v), sc = SharedFloats(g.scratch)
        parallelFor(segments.count * Hkv, threads: threads) { task in
            let index = task / Hkv, kvHead = task % Hkv
            let seg = segments[index]
            if seg.rows == 0 { return }
            attentionBackward(dq: gq.base + seg.start * HD, dk: gk.base + seg.start * KV, dv: gv.base + seg.start * KV,
                              dPrefixK: ck.base + seg.contextGradient, dPrefixV: cv.base + seg.contextGradient,
                              dout: go.base + seg.start * HD, probs: p.base + seg.probs, q: q.base + seg.start * HD,
                              k: k.base + seg.start * KV, v: v.base + seg.start * KV,
                              prefixK: contexts[index].keys.base, prefixV: contexts[index].values.base,
                              prefix: seg.prefix, T: seg.rows, H: H, Hkv: Hkv, D: D, kvHead: kvHead,
                              scratch: sc.base + task * S)
        }
    }

    // MARK: row-parallel norms

    private func rmsnormRows(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>?,
                             x: UnsafeMutablePointer<Float>, weight: [Float], rows: Int, C: Int, eps: Float) {
        let o = SharedFloats(out), r = rstd.map(SharedFloats.init), xs = SharedFloats(x)
        weight.withUnsafeBufferPointer { w in
            let wp = SharedFloats(UnsafeMutablePointer(mutating: w.baseAddress!))
            parallelRows(rows, threads: threads) { first, n in
                rmsnormForward(out: o.base + first * C, rstd: r.map { $0.base + first }, x: xs.base + first * C,
                               weight: wp.base, T: n, C: C, eps: eps)
            }
        }
    }

    private func rmsnormRowsBackward(dx: UnsafeMutablePointer<Float>, dy: UnsafeMutablePointer<Float>,
                                     x: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, weight: [Float],
                                     rows: Int, C: Int) {
        let d = SharedFloats(dx), g = SharedFloats(dy), xs = SharedFloats(x), r = SharedFloats(rstd)
        weight.withUnsafeBufferPointer { w in
            let wp = SharedFloats(UnsafeMutablePointer(mutating: w.baseAddress!))
            parallelRows(rows, threads: threads) { first, n in
                rmsnormBackward(dx: d.base + first * C, dy: g.base + first * C, x: xs.base + first * C,
                                rstd: r.base + first, weight: wp.base, T: n, C: C)
            }
        }
    }
}
