import GGUF
import Llama
import TensorIO
import Testing
import TestSupport

/// Work that cannot fit is refused with a clear error before anything large is allocated: a model
/// larger than the memory limit, a KV cache or training batch past it, an input longer than the context.
struct LimitsTests {
    static func tiny() throws -> (LlamaModel, GGUFFile) {
        let gguf = try GGUFFile(path: TestSupport.fixture("tiny/q4_1.gguf"))
        return (try LlamaModel(gguf: gguf), gguf)
    }

    /// The weight bytes the model counts equal the file's tensor bytes (every tensor is a weight).
    @Test func weightBytesAreTheFilesTensorBytes() throws {
        let (model, gguf) = try Self.tiny()
        #expect(model.weightBytes == gguf.tensors.reduce(0) { $0 + $1.byteCount })
        let c = model.config
        #expect(model.kvCacheBytes(positions: 10) == 10 * 2 * c.numHiddenLayers * c.numKeyValueHeads * c.headDim * 4)
        #expect(model.kvCacheBytes(positions: Int.max / 2) == Int.max)
    }

    @Test func aModelLargerThanTheLimitIsRefused() throws {
        let (model, _) = try Self.tiny()
        let small = MemoryBudget(limit: model.weightBytes - 1, source: "a test limit")
        let error = try #require(throws: ModelError.self) { try InferenceSession(model: model, budget: small) }
        #expect(error.kind == .insufficientMemory)
        #expect(error.message.contains("a test limit"))
        #expect(error.message.contains("weights"))
        // Exactly enough for the weights and one position is accepted.
        let exact = MemoryBudget(limit: model.weightBytes + model.kvCacheBytes(positions: 1), source: "a test limit")
        #expect(throws: Never.self) { try model.checkMemory(positions: 1, budget: exact) }
    }

    /// The KV cache grows with the sequence, and growth past the limit is refused, not attempted.
    @Test func kvCacheGrowthIsChecked() throws {
        let (model, _) = try Self.tiny()
        let budget = MemoryBudget(limit: model.weightBytes + model.kvCacheBytes(positions: 40), source: "a test limit")
        let session = try InferenceSession(model: model, capacity: 64, budget: budget)
        _ = try session.forward([.tokens([Int32](repeating: 1, count: 30))])  // grows to 30 positions
        let error = try #require(throws: ModelError.self) {
            try session.forward([.tokens([Int32](repeating: 1, count: 20))])  // 50 > 40
        }
        #expect(error.kind == .insufficientMemory)
        #expect(error.message.contains("KV cache for 50 positions"))
        #expect(session.position == 30)
        // Growth is lazy: the same session without a limit continues, and its logits match a fresh one's.
        let free = try InferenceSession(model: model, capacity: 64, budget: nil)
        let a = try free.forward([.tokens([1, 2, 3])], logits: .all)
        let b = try free.forward([.tokens((4 ... 40).map(Int32.init))], logits: .last)
        let whole = try InferenceSession(model: model, capacity: 64, budget: nil)
            .forward([.tokens((1 ... 40).map(Int32.init))], logits: .all)
        let V = model.config.vocabSize
        #expect(TestSupport.maxAbsDiff(a, Array(whole[0 ..< 3 * V])) < 1e-4)
        #expect(TestSupport.maxAbsDiff(b, Array(whole[39 * V ..< 40 * V])) < 1e-4)
    }

    @Test func anInputLongerThanTheContextIsRefusedWithTheCounts() throws {
        let (model, _) = try Self.tiny()
        let context = model.config.maxPositionEmbeddings
        let session = try InferenceSession(model: model, capacity: context, budget: nil)
        let error = try #require(throws: ModelError.self) {
            try session.forward([.embeddings([Float](repeating: 0, count: 3 * model.config.hiddenSize)),
                                 .tokens([Int32](repeating: 1, count: context))])
        }
        #expect(error.kind == .invalidInput)
        #expect(error.message.contains("\(context + 3)"))
        #expect(error.message.contains("context length"))
        #expect(session.position == 0)
    }

    @Test func aTrainingBatchPastTheLimitIsRefused() throws {
        let (model, _) = try Self.tiny()
        let C = model.config.hiddenSize
        let pass = PromptGradient(model: model, maxRows: 64)
        pass.budget = MemoryBudget(limit: model.weightBytes + 1024, source: "a test limit")
        let examples = [PromptExample(tokens: [1, 2, 3], targets: [TokenTarget(row: 4, token: 5)])]
        let error = try #require(throws: ModelError.self) {
            try pass.computeBatch(prompt: [Float](repeating: 0.01, count: 2 * C), examples: examples)
        }
        #expect(error.kind == .insufficientMemory)
        #expect(error.message.contains("a batch of 1 examples"))
        pass.budget = nil
        #expect(throws: Never.self) { try pass.computeBatch(prompt: [Float](repeating: 0.01, count: 2 * C), examples: examples) }
    }

    @Test func sizesFormat() {
        #expect(MemoryBudget.format(512) == "512 B")
        #expect(MemoryBudget.format(1536) == "1.5 KiB")
        #expect(MemoryBudget.format(3 << 30) == "3.0 GiB")
    }
}
