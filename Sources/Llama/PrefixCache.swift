import Synchronization

/// The keys and values of a sequence's first positions at every layer, as an `InferenceSession` stores
/// them (keys after RoPE): what a soft prompt placed before everything leaves in the KV cache. Every
/// request of a task starts with the same prompt rows and attention is causal, so these are the same for
/// every request; `InferenceSession.load(prefix:)` starts a request after them.
///
/// Values are plain arrays (copy-on-write): handing a prefix to many sessions copies nothing until a
/// session loads it into its own cache.
public struct PrefixKV: Sendable {
    /// Positions held.
    public let positions: Int
    /// Transformer blocks.
    public var layers: Int { keys.count }
    /// Floats per position and layer, for keys and for values (`numKeyValueHeads × headDim`).
    public let rowWidth: Int
    /// The matrix-product precision the keys and values were computed with.
    public let precision: MatmulPrecision
    /// Per layer, (positions, key/value heads, head size) row-major.
    let keys: [[Float]]
    let values: [[Float]]

    init(positions: Int, rowWidth: Int, precision: MatmulPrecision, keys: [[Float]], values: [[Float]]) {
        self.positions = positions
        self.rowWidth = rowWidth
        self.precision = precision
        self.keys = keys
        self.values = values
    }

    /// Bytes of keys and values held (what a `PrefixCache` charges against its budget).
    public var byteCount: Int { 2 * layers * positions * rowWidth * MemoryLayout<Float>.stride }

    /// Runs `embeddings` through `model` from position 0 and keeps their keys and values.
    /// - Parameters:
    ///   - model: The model.
    ///   - embeddings: `P ≥ 1` rows of `hiddenSize` floats (a soft prompt's vectors).
    ///   - threads: Worker threads.
    ///   - precision: The precision of the sessions that will load the prefix.
    /// - Throws: `ModelError.invalidInput` for a malformed block or one longer than the context;
    ///   `.insufficientMemory` when the cache does not fit.
    public static func compute(model: LlamaModel, embeddings: [Float], threads: Int = 1,
                               precision: MatmulPrecision = .exact) throws(ModelError) -> PrefixKV {
        let C = model.config.hiddenSize
        guard !embeddings.isEmpty, embeddings.count % C == 0 else {
            throw ModelError(.invalidInput, "a prefix needs whole rows of \(C) floats; got \(embeddings.count)")
        }
        let P = embeddings.count / C
        guard P <= model.config.maxPositionEmbeddings else {
            throw ModelError(.invalidInput, "a prefix of \(P) positions exceeds the model's context of \(model.config.maxPositionEmbeddings)")
        }
        let session = try InferenceSession(model: model, capacity: P, threads: threads, precision: precision)
        _ = try session.forward([.embeddings(embeddings)], logits: .none)
        return session.exportPrefix()
    }
}

/// A shared, bounded cache of prompt prefixes (`PrefixKV`) for one model and precision, keyed by task
/// name and the prompt's vector checksum, with least-recently-used eviction under a byte budget.
///
/// Thread-safe: every operation takes an internal lock, held only for bookkeeping. `prefix(for:compute:)`
/// computes a missing entry outside it, once: requests missing the same key meanwhile wait for that
/// computation instead of repeating it (other keys proceed).
/// Keying by the checksum means a prompt changed under the same name never hits a stale entry; inserting
/// a task's new version drops its older ones.
public final class PrefixCache: Sendable {
    /// What identifies a cached prefix.
    public struct Key: Hashable, Sendable {
        /// The task (prompt) name.
        public var task: String
        /// The prompt's vector checksum (`SoftPrompt.vectorsSHA256`): SHA-256 of its stored values.
        public var vectorsSHA256: String

        public init(task: String, vectorsSHA256: String) {
            self.task = task
            self.vectorsSHA256 = vectorsSHA256
        }
    }

    /// Counters since creation.
    public struct Statistics: Sendable, Equatable {
        /// Lookups that found their key.
        public var hits = 0
        /// Lookups that did not.
        public var misses = 0
        /// Entries dropped to stay within the budget.
        public var evictions = 0
        /// Entries dropped because a newer version of their task was inserted.
        public var superseded = 0
        /// Prefixes not kept because they alone exceed the budget.
        public var oversized = 0
        /// Prefixes computed by `prefix(for:compute:)` (a miss waiting for another request's computation
        /// of the same key does not compute).
        public var computations = 0
        /// Entries held now, and their bytes.
        public var entries = 0
        public var bytes = 0
    }

    private struct Entry {
        var prefix: PrefixKV
        var lastUse: UInt64
    }

    /// Serialises the computations of one key.
    private final class Gate: Sendable {
        let mutex = Mutex(())
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var gates: [Key: Gate] = [:]
        var clock: UInt64 = 0
        var statistics = Statistics()

        mutating func tick() -> UInt64 {
            clock += 1
            return clock
        }

        mutating func drop(_ key: Key) {
            if let entry = entries.removeValue(forKey: key) {
                statistics.bytes -= entry.prefix.byteCount
                statistics.entries -= 1
            }
        }
    }

    /// The most bytes of keys and values held at once.
    public let budget: Int
    private let state = Mutex(State())

    /// - Parameter budget: The most bytes of keys and values to hold (`PrefixKV.byteCount` summed).
    public init(budget: Int) {
        precondition(budget >= 0, "a negative budget")
        self.budget = budget
    }

    /// The cached prefix for `key`, marking it most recently used; counts a hit or a miss.
    public func lookup(_ key: Key) -> PrefixKV? {
        state.withLock { s in
            let now = s.tick()
            guard var entry = s.entries[key] else {
                s.statistics.misses += 1
                return nil
            }
            s.statistics.hits += 1
            entry.lastUse = now
            s.entries[key] = entry
            return entry.prefix
        }
    }

    /// Whether `key` is cached (no counter or recency change).
    public func contains(_ key: Key) -> Bool {
        state.withLock { $0.entries[key] != nil }
    }

    /// Caches `prefix` under `key` as the most recently used entry, dropping the task's entries under
    /// other checksums, then the least recently used entries until the total fits the budget.
    /// - Returns: false when the prefix alone exceeds the budget (it is not kept).
    @discardableResult
    public func insert(_ prefix: PrefixKV, for key: Key) -> Bool {
        let size = prefix.byteCount
        return state.withLock { s in
            for stale in Array(s.entries.keys) where stale.task == key.task && stale != key {
                s.drop(stale)
                s.statistics.superseded += 1
            }
            s.drop(key)
            guard size <= budget else {
                s.statistics.oversized += 1
                return false
            }
            while s.statistics.bytes + size > budget,
                  let oldest = s.entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
                s.drop(oldest)
                s.statistics.evictions += 1
            }
            s.entries[key] = Entry(prefix: prefix, lastUse: s.tick())
            s.statistics.entries += 1
            s.statistics.bytes += size
            return true
        }
    }

    /// The cached prefix for `key`, or `compute()`'s result, which is then inserted. Counts one hit or
    /// one miss. On a miss, `compute` runs unless another call is computing the same key: this call then
    /// waits for it and takes its result (computing only if that one failed or was not kept).
    /// - Throws: What `compute` throws (nothing is cached then).
    public func prefix(for key: Key, compute: () throws(ModelError) -> PrefixKV) throws(ModelError) -> PrefixKV {
        if let hit = lookup(key) { return hit }
        let gate = state.withLock { s in
            if let gate = s.gates[key] { return gate }
            let gate = Gate()
            s.gates[key] = gate
            return gate
        }
        return try gate.mutex.withLock { (_: inout Void) throws(ModelError) -> PrefixKV in
            if let done = peek(key) { return done }  // computed while this call waited
            defer { state.withLock { s in if s.gates[key] === gate { s.gates[key] = nil } } }
            state.withLock { $0.statistics.computations += 1 }
            let computed = try compute()
            insert(computed, for: key)
            return computed
        }
    }

    /// The cached prefix for `key` without counting (refreshes its recency).
    private func peek(_ key: Key) -> PrefixKV? {
        state.withLock { s in
            let now = s.tick()
            guard var entry = s.entries[key] else { return nil }
            entry.lastUse = now
            s.entries[key] = entry
            return entry.prefix
        }
    }

    /// Drops every entry of `task` (e.g. when its prompt was removed from the bank).
    public func remove(task: String) {
        state.withLock { s in
            for key in Array(s.entries.keys) where key.task == task { s.drop(key) }
        }
    }

    /// Drops every entry (the counters stay).
    public func removeAll() {
        state.withLock { s in
            for key in Array(s.entries.keys) { s.drop(key) }
        }
    }

    /// The counters and current occupancy.
    public var statistics: Statistics {
        state.withLock { $0.statistics }
    }

    /// The cached keys, least recently used first.
    public var keys: [Key] {
        state.withLock { s in s.entries.sorted { $0.value.lastUse < $1.value.lastUse }.map(\.key) }
    }
}
