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

    /// Keys and values of the cached positions, grown on demand up to `capacity`.
    let cache: KVCache
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
        cache = KVCache(layers: cfg.numHiddenLayers, rowWidth: cfg.numKeyValueHeads * cfg.headDim)
        rope = RoPETable(dims: cfg.ropeDimensions, base: cfg.ropeTheta, mode: cfg.ropeMode,
                         maxPositions: cap, freqScale: cfg.ropeFreqScale, freqFactors: model.ropeFreqFactors)
    }

    /// Forgets every position.
    public func reset() { position = 0 }

    /// Grows every layer's KV cache to hold at least `positions` (at least doubling, at most `capacity`).
    func reserveCache(positions: Int) throws(ModelError) {
        guard positions > cache.capacity else { return }
        var grown = min(capacity, max(positions, 2 * cache.capacity, 16))
        do {
            try model.checkMemory(positions: grown, budget: budget)
        } catch {
            guard grown > positions else { throw error }
            grown = positions  // no room to double: exactly what is needed, if that fits
            try model.checkMemory(positions: grown, budget: budget)
        }
        cache.resize(to: grown, keeping: position)
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
        let layers = (0 ..< cache.layers).map { cache.copy(layer: $0, positions: P) }
        return PrefixKV(positions: P, rowWidth: cache.rowWidth, precision: precision,
                        keys: layers.map(\.keys), values: layers.map(\.values))
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
        for l in 0 ..< cache.layers { cache.fill(layer: l, keys: prefix.keys[l], values: prefix.values[l]) }
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
        let layout = BatchLayout([(rows: T, prefix: position, context: .cache(cache))], heads: cfg.numAttentionHeads,
                                 kvWidth: cache.rowWidth)
        let logits = pass.infer(x: &x, layout: layout, logitRows: rows)
        position += T
        return logits
    }

    /// The passes of this session's model, rotary table, threads and precision.
    var pass: ModelPass { ModelPass(model: model, rope: rope, threads: threads, precision: precision) }
}
