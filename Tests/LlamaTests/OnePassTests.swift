import GGUF
@testable import Llama
import TensorIO
import Testing
import TestSupport

/// Inference and training run one block implementation (Sources/Llama/Block.swift), so they give the same
/// bits for the same rows: the loss of a target computed from an `InferenceSession`'s logits equals the
/// forward-only training pass's (`lossesBatch`) and the training pass's (`computeBatch`), exactly — whether
/// the session runs the prompt rows itself or starts after their cached keys and values.
struct OnePassTests {
    /// −log softmax(logits)[token] of each target, from a session's logits at the target rows.
    static func sessionLosses(_ model: LlamaModel, prompt: [Float], example: PromptExample, cached: Bool) throws -> [Double] {
        let C = model.config.hiddenSize, V = model.config.vocabSize, P = prompt.count / C
        let last = example.targets.map(\.row).max()!
        let tokens = Array(example.tokens[0 ..< max(0, last + 1 - P)])
        let session = try InferenceSession(model: model, capacity: 64, threads: 1)
        var rows = example.targets.map(\.row)
        let logits: [Float]
        if cached {
            // The prompt's keys and values computed once and loaded, as the server does; target rows inside
            // the prompt are not reachable this way, so the caller gives examples with targets after it.
            try session.load(prefix: try PrefixKV.compute(model: model, embeddings: prompt))
            rows = rows.map { $0 - P }
            logits = try session.forward([.tokens(tokens)], logits: .rows(rows))
        } else {
            logits = try session.forward([.embeddings(prompt), .tokens(tokens)], logits: .rows(rows))
        }
        return example.targets.enumerated().map { i, target in
            logits.withUnsafeBufferPointer { all in
                let row = UnsafeBufferPointer(rebasing: all[i * V ..< (i + 1) * V])
                return logSumExp(row) - Double(row[Int(target.token)])
            }
        }
    }

    static func check(_ model: LlamaModel, P: Int, label: String) throws {
        let prompt = try BatchGradientTests.prompt(model, P: P, seed: 31)
        let examples = BatchGradientTests.batch(P: P, vocab: model.config.vocabSize, seed: 17)
        let pass = PromptGradient(model: model, maxRows: 64, threads: 2)
        let forwardOnly = try pass.lossesBatch(prompt: prompt, examples: examples).targetLosses
        let training = try pass.computeBatch(prompt: prompt, examples: examples).targetLosses
        #expect(forwardOnly == training, "\(label): forward-only and training passes")
        for (b, example) in examples.enumerated() {
            let inference = try sessionLosses(model, prompt: prompt, example: example, cached: false)
            #expect(inference == training[b], "\(label) example \(b): session \(inference) vs training \(training[b])")
            if example.targets.allSatisfy({ $0.row >= P }) {
                let cached = try sessionLosses(model, prompt: prompt, example: example, cached: true)
                #expect(cached == training[b], "\(label) example \(b): cached prefix \(cached) vs training \(training[b])")
            }
        }
    }

    @Test(arguments: BatchGradientTests.tinyNames) func inferenceAndTrainingGiveTheSameBits(name: String) throws {
        let manifest = try JSON.parse(try readFile(TestSupport.fixture("tiny/tiny.json")))
        let entry = try #require(manifest["models"]?.arrayValue?.first { $0["name"]?.stringValue == name })
        let model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.fixture("tiny/" + entry["file"]!.stringValue!)))
        try Self.check(model, P: 7, label: name)
    }

    @Test(.enabled(if: TestSupport.defaultModelPath != nil, "default model not fetched (Tools/scripts/bootstrap.sh)"))
    func inferenceAndTrainingGiveTheSameBitsOnTheDefaultModel() throws {
        let model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.defaultModelPath!))
        try Self.check(model, P: 5, label: "SmolLM2")
    }

    /// The layout a training batch builds: positions restart after the shared prompt in every example, the
    /// probabilities and context gradients of each segment get their own ranges.
    @Test func trainingLayout() throws {
        let examples = [PromptExample(tokens: [1, 2, 3], targets: [TokenTarget(row: 4, token: 1)]),
                        PromptExample(tokens: [4], targets: [TokenTarget(row: 1, token: 2)]),
                        PromptExample(tokens: [5, 6], targets: [TokenTarget(row: 3, token: 3)])]
        let plan = try SharedPromptPlan(P: 2, examples: examples, vocab: 10, maxPositions: 16, heads: 3, kvWidth: 4)
        let layout = plan.layout
        // Rows: prompt 2, example 0 up to row 4 → 3 rows, example 1's target is in the prompt → 0 rows, example 2 → 2 rows.
        #expect(layout.rows == 7)
        #expect(layout.segments.map(\.start) == [0, 2, 5, 5])
        #expect(layout.segments.map(\.rows) == [2, 3, 0, 2])
        #expect(layout.positions == [0, 1, 2, 3, 4, 2, 3])
        #expect(plan.targetRows == [4, 1, 6])
        // Probabilities: rows × H × (prefix + rows) per segment, one after another.
        #expect(layout.segments.map(\.probs) == [0, 2 * 3 * 2, 12 + 3 * 3 * 5, 12 + 45])
        #expect(layout.probsPerLayer == 12 + 45 + 0 + 2 * 3 * 4)
        // Context gradients: prefix × kvWidth per example segment.
        #expect(layout.segments.map(\.contextGradient) == [0, 0, 8, 16])
        #expect(layout.contextGradientFloats == 24)
        #expect(layout.maxVisible == 5)
    }
}
