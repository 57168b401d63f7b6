import GGUF
@testable import Llama
import TensorIO
import Testing
import TestSupport

/// The shared-prompt pass of `PromptGradient.computeBatch` against its oracle, the per-example loop
/// `computeBatchNaive` (one-example batches, summed), on tiny models (Tests/Fixtures/tiny) and on the real
/// model, and its determinism across thread counts. The one-example pass itself is checked against
/// PyTorch (`ModelGradientTests`) and each layer against finite differences (`LayerGradientTests`).
struct BatchGradientTests {
    /// Agreement of two batch results: loss, per-target losses (relative to max(|loss|, 1)), and the gradient (cosine and
    /// largest difference relative to the largest oracle entry).
    struct Agreement {
        var lossRelative: Double
        var targetLossMax: Double
        var cosine: Double
        var maxRelative: Double

        init(_ fast: BatchLossGradient, _ oracle: BatchLossGradient) {
            lossRelative = abs(fast.loss - oracle.loss) / abs(oracle.loss)
            targetLossMax = zip(fast.targetLosses.joined(), oracle.targetLosses.joined()).map { abs($0 - $1) / max(abs($1), 1) }.max() ?? 0
            var dot = 0.0, na = 0.0, nb = 0.0, worst = 0.0, scale = 0.0
            for i in oracle.gradient.indices {
                let a = Double(fast.gradient[i]), b = Double(oracle.gradient[i])
                dot += a * b; na += a * a; nb += b * b
                worst = max(worst, abs(a - b)); scale = max(scale, abs(b))
            }
            cosine = dot / (na * nb).squareRoot()
            maxRelative = worst / scale
        }

        func expectClose(_ label: String) {
            #expect(lossRelative <= 1e-6, "\(label): loss relative difference \(lossRelative)")
            #expect(targetLossMax <= 1e-5, "\(label): per-target loss relative difference \(targetLossMax)")
            #expect(cosine >= 0.999999, "\(label): gradient cosine \(cosine)")
            #expect(maxRelative <= 1e-4, "\(label): max |fast - naive| / max |naive| = \(maxRelative)")
        }
    }

    /// A batch exercising the plan: examples of different lengths, a target on the last prompt row, several
    /// targets per example, tokens past the last target (never processed), an example whose only target
    /// lies in the prompt (no rows of its own).
    static func batch(P: Int, vocab V: Int, seed: UInt64) -> [PromptExample] {
        var rng = SplitMix64(seed: seed)
        func token() -> Int32 { Int32(rng.next() % UInt64(V)) }
        func tokens(_ n: Int) -> [Int32] { (0 ..< n).map { _ in token() } }
        return [
            PromptExample(tokens: tokens(6), targets: [TokenTarget(row: P + 4, token: token()), TokenTarget(row: P + 5, token: token())]),
            PromptExample(tokens: tokens(9), targets: [TokenTarget(row: P - 1, token: token()), TokenTarget(row: P + 2, token: token()),
                                                       TokenTarget(row: P + 6, token: token())]),
            PromptExample(tokens: tokens(3), targets: [TokenTarget(row: P + 2, token: token())]),
            PromptExample(tokens: tokens(5), targets: [TokenTarget(row: P - 1, token: token())]),
            PromptExample(tokens: tokens(12), targets: [TokenTarget(row: P + 10, token: token()), TokenTarget(row: P + 11, token: token())]),
        ]
    }

    static func prompt(_ model: LlamaModel, P: Int, seed: UInt64) throws -> [Float] {
        var rng = SplitMix64(seed: seed)
        return try model.embed((0 ..< P).map { _ in Int32(rng.next() % UInt64(model.config.vocabSize)) })
    }

    static let tinyNames = ["qwen2", "mistral", "llama-spm", "llama-rope-freqs", "q4_1", "q4_k_m"]

    @Test(arguments: tinyNames) func sharedPassMatchesTheNaiveLoopOnTinyModels(name: String) throws {
        let manifest = try JSON.parse(try readFile(TestSupport.fixture("tiny/tiny.json")))
        let entry = try #require(manifest["models"]?.arrayValue?.first { $0["name"]?.stringValue == name })
        let model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.fixture("tiny/" + entry["file"]!.stringValue!)))
        let P = 7
        let prompt = try Self.prompt(model, P: P, seed: 11)
        let examples = Self.batch(P: P, vocab: model.config.vocabSize, seed: 5)
        let pass = PromptGradient(model: model, maxRows: 64, threads: 2)
        let fast = try pass.computeBatch(prompt: prompt, examples: examples)
        let naive = try pass.computeBatchNaive(prompt: prompt, examples: examples)
        #expect(fast.positionsProcessed == naive.positionsProcessed)
        #expect(fast.positionsProcessed == [P + 6, P + 7, P + 3, P, P + 12].reduce(0, +))
        #expect(fast.targetLosses.map(\.count) == examples.map(\.targets.count))
        #expect(fast.gradient.count == prompt.count)
        Agreement(fast, naive).expectClose(name)
    }

    /// Same bits for any thread count, and for a second call reusing the pass's memory.
    @Test func sharedPassIsDeterministic() throws {
        let manifest = try JSON.parse(try readFile(TestSupport.fixture("tiny/tiny.json")))
        let entry = try #require(manifest["models"]?.arrayValue?.first { $0["name"]?.stringValue == "q4_1" })
        let model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.fixture("tiny/" + entry["file"]!.stringValue!)))
        let prompt = try Self.prompt(model, P: 5, seed: 3)
        let examples = Self.batch(P: 5, vocab: model.config.vocabSize, seed: 9)
        let one = try PromptGradient(model: model, maxRows: 64, threads: 1).computeBatch(prompt: prompt, examples: examples)
        let pass = PromptGradient(model: model, maxRows: 64, threads: 3)
        _ = try pass.computeBatch(prompt: prompt, examples: Array(examples.prefix(2)))
        let three = try pass.computeBatch(prompt: prompt, examples: examples)
        #expect(one.loss == three.loss)
        #expect(one.gradient == three.gradient)
        #expect(one.targetLosses == three.targetLosses)
    }

    /// The shared pass refuses what the naive loop refuses.
    @Test func invalidBatchesAreRefused() throws {
        let manifest = try JSON.parse(try readFile(TestSupport.fixture("tiny/tiny.json")))
        let entry = try #require(manifest["models"]?.arrayValue?.first { $0["name"]?.stringValue == "q4_1" })
        let model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.fixture("tiny/" + entry["file"]!.stringValue!)))
        let C = model.config.hiddenSize, V = Int32(model.config.vocabSize)
        let pass = PromptGradient(model: model, maxRows: 16)
        let prompt = [Float](repeating: 0.01, count: 2 * C)
        let good = PromptExample(tokens: [1, 2], targets: [TokenTarget(row: 3, token: 4)])
        let cases: [(String, [Float], [PromptExample])] = [
            ("empty batch", prompt, []),
            ("partial prompt row", Array(prompt.dropLast()), [good]),
            ("example without targets", prompt, [good, PromptExample(tokens: [1], targets: [])]),
            ("token outside the vocabulary", prompt, [PromptExample(tokens: [1, V], targets: [TokenTarget(row: 2, token: 1)])]),
            ("target past the sequence", prompt, [PromptExample(tokens: [1, 2], targets: [TokenTarget(row: 4, token: 1)])]),
            ("target token outside the vocabulary", prompt, [PromptExample(tokens: [1, 2], targets: [TokenTarget(row: 3, token: V)])]),
            ("more rows than positions", prompt, [PromptExample(tokens: [Int32](repeating: 1, count: 20),
                                                                targets: [TokenTarget(row: 21, token: 1)])]),
        ]
        for (label, p, examples) in cases {
            #expect(throws: ModelError.self, "\(label)") { _ = try pass.computeBatch(prompt: p, examples: examples) }
            #expect(throws: ModelError.self, "\(label) (naive)") { _ = try pass.computeBatchNaive(prompt: p, examples: examples) }
        }
    }

    @Suite(.enabled(if: TestSupport.defaultModelPath != nil, "default model not fetched (Tools/scripts/bootstrap.sh)"))
    struct RealModel {
        @Test func sharedPassMatchesTheNaiveLoop() throws {
            let model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.defaultModelPath!))
            let P = 6
            let prompt = try BatchGradientTests.prompt(model, P: P, seed: 21)
            let examples = Array(BatchGradientTests.batch(P: P, vocab: model.config.vocabSize, seed: 8).prefix(3))
            let pass = PromptGradient(model: model, maxRows: 32, threads: 2)
            let fast = try pass.computeBatch(prompt: prompt, examples: examples)
            let naive = try pass.computeBatchNaive(prompt: prompt, examples: examples)
            let a = Agreement(fast, naive)
            print("shared vs naive on the real model: loss rel \(a.lossRelative), cosine \(a.cosine), max rel \(a.maxRelative)")
            #expect(fast.positionsProcessed == naive.positionsProcessed)
            a.expectClose("SmolLM2")
        }
    }
}
