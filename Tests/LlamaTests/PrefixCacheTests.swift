import Dispatch
import GGUF
@testable import Llama
import Synchronization
import TensorIO
import Testing
import TestSupport

/// A request started from a cached prompt prefix (`PrefixKV` loaded into a session) computes what the
/// same request computes with the prompt's embeddings in front; the cache evicts least recently used
/// entries under its budget and never serves a changed prompt's stale entry.
struct PrefixCacheTests {
    static func tiny(_ name: String) throws -> (LlamaModel, embeddings: [Float], ids: [Int32]) {
        let manifest = try JSON.parse(try readFile(TestSupport.fixture("tiny/tiny.json")))
        let entry = try #require(manifest["models"]?.arrayValue?.first { $0["name"]?.stringValue == name })
        let model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.fixture("tiny/" + entry["file"]!.stringValue!)))
        let ids = try #require(entry["ids"]?.arrayValue).map { Int32($0.intValue!) }
        let embeddings = try #require(try NPY.read(path: TestSupport.fixture("tiny/" + entry["embeddings"]!.stringValue!)).floats())
        return (model, embeddings, ids)
    }

    /// Logits of every token row three ways: (1) embeddings + tokens in one forward call, (2) the same in
    /// two calls on one session, (3) a prefix computed in its own session, loaded, then the tokens.
    static func threeWays(_ model: LlamaModel, _ embeddings: [Float], _ ids: [Int32], threads: Int = 1,
                          precision: MatmulPrecision = .exact) throws -> (one: [Float], two: [Float], cached: [Float]) {
        let P = embeddings.count / model.config.hiddenSize
        let capacity = P + ids.count
        let a = try InferenceSession(model: model, capacity: capacity, threads: threads, precision: precision)
        let all = try a.forward([.embeddings(embeddings), .tokens(ids)], logits: .rows(Array(P ..< capacity)))
        let b = try InferenceSession(model: model, capacity: capacity, threads: threads, precision: precision)
        _ = try b.forward([.embeddings(embeddings)], logits: .none)
        let two = try b.forward([.tokens(ids)], logits: .all)
        let prefix = try PrefixKV.compute(model: model, embeddings: embeddings, threads: threads, precision: precision)
        #expect(prefix.positions == P)
        let c = try InferenceSession(model: model, capacity: capacity, threads: threads, precision: precision)
        _ = try c.forward([.tokens(ids)], logits: .none)  // something to overwrite
        try c.load(prefix: prefix)
        #expect(c.position == P)
        let cached = try c.forward([.tokens(ids)], logits: .all)
        return (all, two, cached)
    }

    /// Two calls vs a loaded prefix: the same operations in the same order, so bit-equal. One call vs a
    /// loaded prefix: the prompt rows' keys and values come from matrix products over P rows instead of
    /// P + T; the kernels compute each output row independently of the others, so these are bit-equal
    /// too on this machine — the test requires 1e-5 and records any difference.
    @Test(arguments: ["llama-spm", "qwen2", "q4_1", "q4_k_m"])
    func cachedPrefixMatchesTheEmbeddings(name: String) throws {
        let (model, embeddings, ids) = try Self.tiny(name)
        for precision in [MatmulPrecision.exact, .int8] {
            let (one, two, cached) = try Self.threeWays(model, embeddings, ids, threads: 2, precision: precision)
            #expect(cached == two, "\(name) \(precision): two calls vs cached prefix")
            #expect(TestSupport.maxAbsDiff(cached, one) <= 1e-5, "\(name) \(precision): \(TestSupport.maxAbsDiff(cached, one))")
            #expect(cached == one, "\(name) \(precision): not bit-equal to one call (max |diff| \(TestSupport.maxAbsDiff(cached, one)))")
        }
    }

    @Test(.enabled(if: TestSupport.defaultModelPath != nil))
    func cachedPrefixMatchesOnTheDefaultModel() throws {
        let model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.defaultModelPath!))
        var rng = SplitMix64(seed: 5)
        let V = model.config.vocabSize
        let prompt = try model.embed((0 ..< 20).map { _ in Int32(rng.next() % UInt64(V)) })
        let ids: [Int32] = [1, 4093, 28, 253, 2124, 30, 198]
        let (one, two, cached) = try Self.threeWays(model, prompt, ids, threads: 2)
        #expect(cached == two)
        #expect(TestSupport.maxAbsDiff(cached, one) <= 1e-5, "\(TestSupport.maxAbsDiff(cached, one))")
    }

    @Test func loadRefusesAPrefixOfAnotherShapeOrPrecision() throws {
        let (model, embeddings, _) = try Self.tiny("llama-spm")
        let (other, _, _) = try Self.tiny("qwen2")
        let prefix = try PrefixKV.compute(model: model, embeddings: embeddings)
        let int8 = try InferenceSession(model: model, capacity: 16, precision: .int8)
        #expect(throws: ModelError.self) { try int8.load(prefix: prefix) }
        let small = try InferenceSession(model: model, capacity: prefix.positions - 1)
        #expect(throws: ModelError.self) { try small.load(prefix: prefix) }
        if other.config.numHiddenLayers != model.config.numHiddenLayers
            || other.config.numKeyValueHeads * other.config.headDim != model.config.numKeyValueHeads * model.config.headDim {
            let s = try InferenceSession(model: other, capacity: 16)
            #expect(throws: ModelError.self) { try s.load(prefix: prefix) }
        }
        // exportPrefix of a session is what compute returns.
        let s = try InferenceSession(model: model, capacity: 16)
        _ = try s.forward([.embeddings(embeddings)], logits: .none)
        let exported = s.exportPrefix()
        #expect(exported.keys == prefix.keys && exported.values == prefix.values)
        #expect(prefix.byteCount == 2 * model.config.numHiddenLayers * prefix.positions
                * model.config.numKeyValueHeads * model.config.headDim * 4)
    }

    /// Prefixes of the tiny model: `rows` embedding rows each, distinct values.
    static func prefixes(_ count: Int, rows: Int) throws -> [PrefixKV] {
        let (model, embeddings, _) = try Self.tiny("llama-spm")
        let C = model.config.hiddenSize
        return try (0 ..< count).map { i in
            try PrefixKV.compute(model: model, embeddings: embeddings[0 ..< rows * C].map { $0 * Float(1 + i) })
        }
    }

    @Test func leastRecentlyUsedIsEvictedFirst() throws {
        let p = try Self.prefixes(3, rows: 2)
        let size = p[0].byteCount
        let cache = PrefixCache(budget: 2 * size + size / 2)
        let a = PrefixCache.Key(task: "a", vectorsSHA256: "1"), b = PrefixCache.Key(task: "b", vectorsSHA256: "2")
        let c = PrefixCache.Key(task: "c", vectorsSHA256: "3")
        #expect(cache.insert(p[0], for: a))
        #expect(cache.insert(p[1], for: b))
        #expect(cache.lookup(a)?.keys == p[0].keys)  // a is now the most recently used
        #expect(cache.insert(p[2], for: c))          // over budget: b goes
        #expect(cache.keys == [a, c])
        #expect(cache.lookup(b) == nil)
        var stats = cache.statistics
        #expect(stats.hits == 1 && stats.misses == 1 && stats.evictions == 1 && stats.entries == 2 && stats.bytes == 2 * size)
        // A prefix larger than the whole budget is not kept and evicts nothing.
        let big = try Self.prefixes(1, rows: 6)[0]
        #expect(!cache.insert(big, for: PrefixCache.Key(task: "big", vectorsSHA256: "4")))
        stats = cache.statistics
        #expect(stats.oversized == 1 && stats.entries == 2)
        cache.remove(task: "a")
        #expect(cache.keys == [c] && cache.statistics.bytes == size)
        cache.removeAll()
        #expect(cache.keys.isEmpty && cache.statistics.bytes == 0)
    }

    /// A prompt changed under the same name has another checksum: its lookup misses, and inserting the new
    /// version drops the old one.
    @Test func aChangedPromptMisses() throws {
        let p = try Self.prefixes(2, rows: 2)
        let cache = PrefixCache(budget: 1 << 30)
        var computed = 0
        let old = PrefixCache.Key(task: "sentiment", vectorsSHA256: String(repeating: "a", count: 64))
        let new = PrefixCache.Key(task: "sentiment", vectorsSHA256: String(repeating: "b", count: 64))
        _ = try cache.prefix(for: old) { computed += 1; return p[0] }
        _ = try cache.prefix(for: old) { computed += 1; return p[0] }
        #expect(computed == 1)
        let fresh = try cache.prefix(for: new) { computed += 1; return p[1] }
        #expect(computed == 2 && fresh.keys == p[1].keys)
        let stats = cache.statistics
        #expect(stats.hits == 1 && stats.misses == 2 && stats.superseded == 1 && cache.keys == [new])
    }

    /// Many threads looking up and inserting: counters stay consistent and the budget holds.
    @Test func concurrentUseKeepsTheBudget() throws {
        let p = try Self.prefixes(4, rows: 1)
        let size = p[0].byteCount
        let cache = PrefixCache(budget: 3 * size)
        DispatchQueue.concurrentPerform(iterations: 400) { i in
            let key = PrefixCache.Key(task: "t\(i % 7)", vectorsSHA256: "x")
            if cache.lookup(key) == nil { cache.insert(p[i % 4], for: key) }
        }
        let stats = cache.statistics
        #expect(stats.hits + stats.misses == 400)
        #expect(stats.bytes <= 3 * size && stats.bytes == stats.entries * size && cache.keys.count == stats.entries)
    }

    /// Requests missing the same key at once compute it once; the others wait and take its result.
    @Test func concurrentMissesComputeOnce() throws {
        let p = try Self.prefixes(1, rows: 2)[0]
        let cache = PrefixCache(budget: 1 << 30)
        let key = PrefixCache.Key(task: "t", vectorsSHA256: "x")
        final class Tally: Sendable { let wrong = Mutex(0) }
        let tally = Tally()
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            let got = try? cache.prefix(for: key) { () throws(ModelError) -> PrefixKV in
                var spin = 0.0
                for i in 0 ..< 10_000_000 { spin += Double(i) }  // a slow computation (tens of ms)
                return spin >= 0 ? p : p
            }
            if got?.keys != p.keys { tally.wrong.withLock { $0 += 1 } }
        }
        let stats = cache.statistics
        #expect(tally.wrong.withLock { $0 } == 0)
        #expect(stats.computations == 1 && stats.hits + stats.misses == 6 && stats.entries == 1, "\(stats)")
        // A failed computation caches nothing and the next request computes again.
        let other = PrefixCache.Key(task: "u", vectorsSHA256: "y")
        #expect(throws: ModelError.self) {
            try cache.prefix(for: other) { () throws(ModelError) -> PrefixKV in throw ModelError(.invalidInput, "no") }
        }
        #expect(try cache.prefix(for: other) { p }.keys == p.keys)
        #expect(cache.statistics.computations == 3)
    }
}
