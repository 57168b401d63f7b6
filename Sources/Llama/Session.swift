import Quants

/// One segment of a sequence fed to the model: raw input embeddings (the soft-prompt hook) or token ids.
public enum ModelInput: Sendable {
    /// `n` rows of `hiddenSize` floats, row-major.
    case embeddings([Float])
    /// Token ids, embedded from the model's token table.
    case tokens([Int32])
}

/// Which rows of a forward call produce logits.
public enum LogitsRequest: Sendable, Equatable {
    case none
    case last
    case all
    /// Row indices within this call's input (0-based).
    case rows([Int])
}

/// A running sequence: the model, its KV cache and scratch buffers. Not thread-safe; one per sequence.
public final class InferenceSession {
    public let model: LlamaModel
    /// Positions the KV cache can hold.
    public let capacity: Int
    /// Threads used by the matrix products and attention.
    public var threads: Int
    /// How matrix products treat activations (`.exact` by default; `.int8` is llama.cpp's faster path).
    public var precision: MatmulPrecision
    /// Positions already in the cache.
    public internal(set) var position = 0

    var kCache: [[Float]]  // per layer (cachedPositions, Hkv, D), grown on demand up to capacity
    var vCache: [[Float]]  // per layer (cachedPositions, Hkv, D)
    private var cachedPositions = 0
    private let budget: MemoryBudget?
    let rope: RoPETable

    /// - Parameters:
    /// The KV cache grows with the sequence (doubling, up to `capacity`), so a session costs memory for the
    /// positions it uses, not for the ones it could use; each growth is checked against `budget` first.
    /// - Parameters:
    ///   - capacity: the most positions the session accepts (default: the model's context length, at most 4096).
    ///   - threads: worker threads (default 1).
    ///   - budget: the memory limit growth is checked against (default: the machine's, `MemoryBudget.system()`).
    /// - Throws: `ModelError` `.invalidInput` for a capacity outside the model's context, `.insufficientMemory`
    ///   when the weights alone exceed `budget`.
    public init(model: LlamaModel, capacity: Int? = nil, threads: Int = 1,
                precision: MatmulPrecision = .exact, budget: MemoryBudget? = .system()) throws(ModelError) {
        let cfg = model.config
        let cap = capacity ?? min(cfg.maxPositionEmbeddings, 4096)
        guard cap > 0, cap <= cfg.maxPositionEmbeddings else {
            throw ModelError(.invalidInput, "capacity \(cap) is outside 1...\(cfg.maxPositionEmbeddings) (the model's context length)")
        }
        self.model = model
        self.capacity = cap
        self.threads = max(1, threads)
        self.precision = precision
        try model.checkMemory(positions: 1, budget: budget)
        self.budget = budget
        kCache = Array(repeating: [], count: cfg.numHiddenLayers)
        vCache = kCache
        rope = RoPETable(dims: cfg.ropeDimensions, base: cfg.ropeTheta, mode: cfg.ropeMode,
                         maxPositions: cap, freqScale: cfg.ropeFreqScale, freqFactors: model.ropeFreqFactors)
    }

    /// Forgets every position.
    public func reset() { position = 0 }

    /// Grows every layer's KV cache to hold at least `positions` (at least doubling, at most `capacity`).
    func reserveCache(positions: Int) throws(ModelError) {
        guard positions > cachedPositions else { return }
        var grown = min(capacity, max(positions, 2 * cachedPositions, 16))
        do {
            try model.checkMemory(positions: grown, budget: budget)
        } catch {
            guard grown > positions else { throw error }
            grown = positions  // no room to double: exactly what is needed, if that fits
            try model.checkMemory(positions: grown, budget: budget)
        }
        let cfg = model.config
        let count = grown * cfg.numKeyValueHeads * cfg.headDim
        for l in 0 ..< kCache.count {
            kCache[l] += [Float](repeating: 0, count: count - kCache[l].count)
            vCache[l] += [Float](repeating: 0, count: count - vCache[l].count)
        }
        cachedPositions = grown
    }

    /// Forgets positions from `newPosition` on (e.g. to reuse a shared prefix).
    public func truncate(to newPosition: Int) {
        position = max(0, min(position, newPosition))
    }

    /// The keys and values of the first `positions` cached positions at every layer (default: all of
    /// them), as the session stores them (keys after RoPE), to start other sessions from
    /// (`load(prefix:)`).
    /// - Precondition: `positions` is at most `position`.
    public func exportPrefix(positions: Int? = nil) -> PrefixKV {
        let P = positions ?? position
        precondition(P >= 0 && P <= position, "cannot export \(P) positions of \(position)")
        let cfg = model.config
        let width = cfg.numKeyValueHeads * cfg.headDim
        return PrefixKV(positions: P, rowWidth: width, precision: precision,
                        keys: kCache.map { Array($0[0 ..< P * width]) },
                        values: vCache.map { Array($0[0 ..< P * width]) })
    }

    /// Starts the sequence over from a precomputed prefix: its keys and values fill the first
    /// `prefix.positions` positions of the KV cache and `position` becomes `prefix.positions`, so the
    /// next `forward` continues after it exactly as if the prefix's inputs had just been run.
    /// - Parameter prefix: Computed by this model with this session's `precision`.
    /// - Throws: `ModelError.invalidInput` when the prefix does not fit the model (layers, key/value
    ///   width), was computed with another precision, or is longer than the capacity;
    ///   `.insufficientMemory` when the KV cache cannot grow to hold it.
    public func load(prefix: PrefixKV) throws(ModelError) {
        let cfg = model.config
        let width = cfg.numKeyValueHeads * cfg.headDim
        guard prefix.layers == cfg.numHiddenLayers, prefix.rowWidth == width else {
            throw ModelError(.invalidInput, "the prefix has \(prefix.layers) layers of \(prefix.rowWidth) key/value values per "
                             + "position; the model has \(cfg.numHiddenLayers) of \(width)")
        }
        guard prefix.precision == precision else {
            throw ModelError(.invalidInput, "the prefix was computed with \(prefix.precision) matrix products; the session uses \(precision)")
        }
        guard prefix.positions <= capacity else {
            throw ModelError(.invalidInput, "the prefix holds \(prefix.positions) positions, more than the session's capacity of \(capacity)")
        }
        position = 0
        try reserveCache(positions: prefix.positions)
        let count = prefix.positions * width
        for l in 0 ..< kCache.count {
            kCache[l].replaceSubrange(0 ..< count, with: prefix.keys[l])
            vCache[l].replaceSubrange(0 ..< count, with: prefix.values[l])
        }
        position = prefix.positions
    }

    /// Runs the model over `inputs` (appended after the cached positions) and returns the logits of the
    /// requested rows, (R, V) row-major.
    /// - Throws: `ModelError.invalidInput` for a malformed embedding block, a bad token id, a bad row
    ///   request, or a sequence longer than the capacity.
    public func forward(_ inputs: [ModelInput], logits request: LogitsRequest = .last) throws(ModelError) -> [Float] {
        let cfg = model.config
        let C = cfg.hiddenSize
        // Positions first, so that an input longer than the context is refused before it is embedded.
        var T = 0
        for input in inputs {
            switch input {
            case .embeddings(let rows): T += rows.count / max(1, C)
            case .tokens(let ids): T += ids.count
            }
        }
        guard T > 0 else {
            _ = try model.inputRows(inputs)  // reports a malformed block
            return []
        }
        guard position + T <= capacity else {
            let needs = position > 0 ? "\(T) positions after the \(position) already used (\(position + T) in all)" : "\(T) positions"
            let limit = capacity == cfg.maxPositionEmbeddings ? "the model's context length of \(capacity)"
                : "this session's capacity of \(capacity) (the model's context length is \(cfg.maxPositionEmbeddings))"
            throw ModelError(.invalidInput, "the input needs \(needs), more than \(limit)")
        }
        var x = try model.inputRows(inputs)
        try reserveCache(positions: position + T)
        let rows: [Int]
        switch request {
        case .none: rows = []
        case .last: rows = [T - 1]
        case .all: rows = Array(0 ..< T)
        case .rows(let r):
            guard r.allSatisfy({ $0 >= 0 && $0 < T }) else {
                throw ModelError(.invalidInput, "logit rows \(r) are outside 0..<\(T)")
            }
            rows = r
        }
        runLayers(&x, T: T)
        return outputLogits(x, rows: rows)
    }

    /// The transformer blocks over `x` (T, C), in place; advances `position`.
    private func runLayers(_ x: inout [Float], T: Int) {
        let cfg = model.config
        let C = cfg.hiddenSize, D = cfg.headDim, H = cfg.numAttentionHeads, Hkv = cfg.numKeyValueHeads
        let F = cfg.intermediateSize
        let pos0 = position
        let S = pos0 + T
        var h = [Float](repeating: 0, count: T * C)          // (T, C) normed input
        var q = [Float](repeating: 0, count: T * H * D)      // (T, H, D)
        var att = [Float](repeating: 0, count: T * H * D)    // (T, H, D)
        var proj = [Float](repeating: 0, count: T * C)       // (T, C)
        var gate = [Float](repeating: 0, count: T * F)       // (T, F)
        var up = [Float](repeating: 0, count: T * F)         // (T, F)
        let positions = (0 ..< T).map { Int32(pos0 + $0) }
        let threads = self.threads
        let precision = self.precision
        for (l, layer) in model.layers.enumerated() {
            x.withUnsafeMutableBufferPointer { xb in
                let xp = xb.baseAddress!
                layer.attnNorm.withUnsafeBufferPointer { w in
                    h.withUnsafeMutableBufferPointer { rmsnormForward(out: $0.baseAddress!, rstd: nil, x: xp, weight: w.baseAddress!, T: T, C: C, eps: cfg.rmsNormEps) }
                }
                h.withUnsafeBufferPointer { hb in
                    q.withUnsafeMutableBufferPointer { linearForward(out: $0.baseAddress!, x: hb.baseAddress!, M: T, layer: layer.q, threads: threads, precision: precision) }
                    kCache[l].withUnsafeMutableBufferPointer { kc in
                        linearForward(out: kc.baseAddress! + pos0 * Hkv * D, x: hb.baseAddress!, M: T, layer: layer.k, threads: threads, precision: precision)
                    }
                    vCache[l].withUnsafeMutableBufferPointer { vc in
                        linearForward(out: vc.baseAddress! + pos0 * Hkv * D, x: hb.baseAddress!, M: T, layer: layer.v, threads: threads, precision: precision)
                    }
                }
                positions.withUnsafeBufferPointer { pp in
                    q.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, T: T, heads: H, headSize: D, positions: pp.baseAddress!) }
                    kCache[l].withUnsafeMutableBufferPointer { kc in
                        rope.apply(kc.baseAddress! + pos0 * Hkv * D, T: T, heads: Hkv, headSize: D, positions: pp.baseAddress!)
                    }
                }
                q.withUnsafeBufferPointer { qb in
                    kCache[l].withUnsafeBufferPointer { kc in
                        vCache[l].withUnsafeBufferPointer { vc in
                            att.withUnsafeMutableBufferPointer { ab in
                                let (qa, ka, va, aa) = (Int(bitPattern: qb.baseAddress), Int(bitPattern: kc.baseAddress),
                                                        Int(bitPattern: vc.baseAddress), Int(bitPattern: ab.baseAddress))
                                parallelFor(min(H, threads), threads: threads) { chunk in
                                    let per = (H + min(H, threads) - 1) / min(H, threads)
                                    let heads = chunk * per ..< min(H, chunk * per + per)
                                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: S)
                                    defer { scratch.deallocate() }
                                    attentionForward(out: UnsafeMutablePointer(bitPattern: aa)!, probs: nil,
                                                     q: UnsafePointer(bitPattern: qa)!, kCache: UnsafePointer(bitPattern: ka)!,
                                                     vCache: UnsafePointer(bitPattern: va)!, T: T, pos0: pos0, H: H, Hkv: Hkv, D: D,
                                                     heads: heads, scratch: scratch)
                                }
                            }
                        }
                    }
                }
                layer.finishBlock(xp, attention: att, rows: T, config: cfg, threads: threads, precision: precision,
                                  proj: &proj, h: &h, gate: &gate, up: &up)
            }
        }
        position += T
    }

    /// Final norm and output head for the selected rows of `x` (T, C); returns (R, V).
    func outputLogits(_ x: [Float], rows: [Int], threads: Int? = nil) -> [Float] {
        let threads = threads ?? self.threads
        let cfg = model.config
        let C = cfg.hiddenSize, V = cfg.vocabSize
        if rows.isEmpty { return [] }
        var selected = [Float](repeating: 0, count: rows.count * C)
        for (i, r) in rows.enumerated() {
            for c in 0 ..< C { selected[i * C + c] = x[r * C + c] }
        }
        var normed = [Float](repeating: 0, count: rows.count * C)
        selected.withUnsafeBufferPointer { s in
            model.outputNorm.withUnsafeBufferPointer { w in
                normed.withUnsafeMutableBufferPointer { rmsnormForward(out: $0.baseAddress!, rstd: nil, x: s.baseAddress!, weight: w.baseAddress!, T: rows.count, C: C, eps: cfg.rmsNormEps) }
            }
        }
        var logits = [Float](repeating: 0, count: rows.count * V)
        normed.withUnsafeBufferPointer { n in
            logits.withUnsafeMutableBufferPointer { linearForward(out: $0.baseAddress!, x: n.baseAddress!, M: rows.count, layer: model.output, threads: threads, precision: precision) }
        }
        return logits
    }
}

extension LlamaLayer {
    /// The rest of a block once attention is done, for `rows` rows of `x` in place: output projection and
    /// residual, feed-forward norm, SwiGLU feed-forward and residual (one pass over each weight matrix).
    /// `attention` holds the rows' attention output (rows, H·D); the other buffers are scratch of at least
    /// (rows, C) for `proj` and `h` and (rows, F) for `gate` and `up`.
    func finishBlock(_ xp: UnsafeMutablePointer<Float>, attention att: [Float], rows T: Int, config cfg: LlamaConfig,
                     threads: Int, precision: MatmulPrecision,
                     proj: inout [Float], h: inout [Float], gate: inout [Float], up: inout [Float]) {
        let layer = self
        let C = cfg.hiddenSize, F = cfg.intermediateSize
        att.withUnsafeBufferPointer { ab in
            proj.withUnsafeMutableBufferPointer { linearForward(out: $0.baseAddress!, x: ab.baseAddress!, M: T, layer: layer.o, threads: threads, precision: precision) }
        }
        for i in 0 ..< T * C { xp[i] += proj[i] }
        layer.ffnNorm.withUnsafeBufferPointer { w in
            h.withUnsafeMutableBufferPointer { rmsnormForward(out: $0.baseAddress!, rstd: nil, x: xp, weight: w.baseAddress!, T: T, C: C, eps: cfg.rmsNormEps) }
        }
        h.withUnsafeBufferPointer { hb in
            gate.withUnsafeMutableBufferPointer { linearForward(out: $0.baseAddress!, x: hb.baseAddress!, M: T, layer: layer.gate, threads: threads, precision: precision) }
            up.withUnsafeMutableBufferPointer { linearForward(out: $0.baseAddress!, x: hb.baseAddress!, M: T, layer: layer.up, threads: threads, precision: precision) }
        }
        gate.withUnsafeMutableBufferPointer { g in
            up.withUnsafeBufferPointer { u in swigluForward(out: g.baseAddress!, gate: g.baseAddress!, up: u.baseAddress!, count: T * F) }
        }
        gate.withUnsafeBufferPointer { g in
            proj.withUnsafeMutableBufferPointer { linearForward(out: $0.baseAddress!, x: g.baseAddress!, M: T, layer: layer.down, threads: threads, precision: precision) }
        }
        for i in 0 ..< T * C { xp[i] += proj[i] }
    }
}
