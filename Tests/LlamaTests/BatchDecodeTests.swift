import GGUF
@testable import Llama
import TensorIO
import Testing
import TestSupport

/// A batched decoding step (`BatchDecode.step`) computes for every row what its session computes when
/// stepped alone: three sessions started from different prefixes, at different lengths, stepped 16
/// times with greedy tokens, once batched and once one by one.
struct BatchDecodeTests {
    /// Three sessions: a prefix of the embeddings loaded + k prompt tokens, for different splits.
    static func sessions(_ model: LlamaModel, _ embeddings: [Float], _ ids: [Int32], precision: MatmulPrecision) throws -> [InferenceSession] {
        let C = model.config.hiddenSize
        let P = embeddings.count / C
        var out: [InferenceSession] = []
        for (i, rows) in [P, max(1, P / 2), 1].enumerated() {
            let prefix = try PrefixKV.compute(model: model, embeddings: Array(embeddings[0 ..< rows * C]), precision: precision)
            let s = try InferenceSession(model: model, capacity: rows + ids.count + 20, threads: 2, precision: precision)
            try s.load(prefix: prefix)
            _ = try s.forward([.tokens(Array(ids.prefix(ids.count - i)))], logits: .none)
            out.append(s)
        }
        return out
    }

    static func argmax(_ row: ArraySlice<Float>) -> Int32 {
        var best = row.startIndex
        for i in row.indices where row[i] > row[best] { best = i }
        return Int32(best - row.startIndex)
    }

    /// Steps `steps` times; returns every step's logits (B, V) and the greedy tokens.
    static func run(_ model: LlamaModel, _ embeddings: [Float], _ ids: [Int32], precision: MatmulPrecision,
                    batched: Bool, steps: Int = 16) throws -> (logits: [[Float]], tokens: [[Int32]]) {
        let sessions = try Self.sessions(model, embeddings, ids, precision: precision)
        let V = model.config.vocabSize
        var next: [Int32] = [ids[0], ids[ids.count - 1], ids[1]]
        var allLogits: [[Float]] = []
        var tokens: [[Int32]] = []
        for _ in 0 ..< steps {
            var logits: [Float]
            if batched {
                logits = try BatchDecode.step(sessions, tokens: next, threads: 2)
            } else {
                logits = []
                for (b, s) in sessions.enumerated() { logits += try s.forward([.tokens([next[b]])], logits: .last) }
            }
            allLogits.append(logits)
            next = (0 ..< sessions.count).map { argmax(logits[$0 * V ..< ($0 + 1) * V]) }
            tokens.append(next)
        }
        return (allLogits, tokens)
    }

    @Test(arguments: ["llama-spm", "qwen2", "q4_1", "q4_k_m", "q8_0"])
    func batchedStepEqualsEachSessionAlone(name: String) throws {
        let (model, embeddings, ids) = try PrefixCacheTests.tiny(name)
        for precision in [MatmulPrecision.exact, .int8] {
            let alone = try Self.run(model, embeddings, ids, precision: precision, batched: false)
            let batch = try Self.run(model, embeddings, ids, precision: precision, batched: true)
            #expect(batch.tokens == alone.tokens, "\(name) \(precision)")
            let diff = zip(batch.logits, alone.logits).map { TestSupport.maxAbsDiff($0, $1) }.max()!
            #expect(diff <= 1e-5, "\(name) \(precision): \(diff)")
            // The kernels compute each output row independently of the others: bit-equal.
            #expect(batch.logits == alone.logits, "\(name) \(precision): max |diff| \(diff)")
        }
    }

    @Test(.enabled(if: TestSupport.defaultModelPath != nil))
    func batchedStepOnTheDefaultModel() throws {
        let model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.defaultModelPath!))
        var rng = SplitMix64(seed: 9)
        let V = model.config.vocabSize
        let prompt = try model.embed((0 ..< 8).map { _ in Int32(rng.next() % UInt64(V)) })
        let ids: [Int32] = [1, 4093, 28, 253, 2124, 30, 198]
        let alone = try Self.run(model, prompt, ids, precision: .exact, batched: false, steps: 8)
        let batch = try Self.run(model, prompt, ids, precision: .exact, batched: true, steps: 8)
        #expect(batch.tokens == alone.tokens)
        let diff = zip(batch.logits, alone.logits).map { TestSupport.maxAbsDiff($0, $1) }.max()!
        #expect(diff <= 1e-5, "\(diff)")
        #expect(batch.logits == alone.logits, "max |diff| \(diff)")
    }

    @Test func refusesMismatchedBatches() throws {
        let (model, _, ids) = try PrefixCacheTests.tiny("llama-spm")
        let a = try InferenceSession(model: model, capacity: 4)
        let b = try InferenceSession(model: model, capacity: 1, precision: .int8)
        #expect(throws: ModelError.self) { try BatchDecode.step([a], tokens: [ids[0], ids[1]]) }
        #expect(throws: ModelError.self) { try BatchDecode.step([a, b], tokens: [ids[0], ids[1]]) }
        #expect(throws: ModelError.self) { try BatchDecode.step([a, a], tokens: [ids[0], ids[1]]) }
        let full = try InferenceSession(model: model, capacity: 1)
        _ = try full.forward([.tokens([ids[0]])], logits: .none)
        #expect(throws: ModelError.self) { try BatchDecode.step([a, full], tokens: [ids[0], ids[1]]) }
        #expect(a.position == 0)
        #expect(try BatchDecode.step([], tokens: []).isEmpty)
    }
}
