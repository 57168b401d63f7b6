import Llama
import PromptTuning
import SoftPrompt
import TensorIO
import TestSupport
import Testing
import Tokenizers

/// `PromptValidator.behaviourCheck`: the task metric with the prompt against no prompt, on the tiny model.
///
/// Oracle: the rows are labelled from the evaluator's own predictions (`ExampleScore.predicted`) with and
/// without one prompt, keeping only rows where the prompt flips the prediction. Labelled with the no-prompt
/// prediction, no prompt scores 1 and the prompt 0 (the check must fail); labelled with the prompt's
/// prediction, the other way round (the check must pass).
@Suite struct BehaviourCheckTests {
    let model: LlamaModel
    let tokenizer: Tokenizer

    init() throws {
        (model, tokenizer) = try TinyQ41.load()
    }

    /// Inputs of a few random letters, two one-letter choices.
    func candidates(_ count: Int) -> [TaskExample] {
        var rng = SplitMix64(seed: 11)
        let letters = Array("abcdefghij")
        return (0 ..< count).map { _ in
            let input = String((0 ..< 3 + Int(rng.next() % 4)).map { _ in letters[Int(rng.next() % 10)] })
            return TaskExample(input: input, output: " x", choices: [" x", " y"])
        }
    }

    /// A prompt and the rows whose prediction it flips, with (no prompt, prompt) predictions.
    func flippedRows(_ prompt: SoftPrompt) throws -> [(TaskExample, without: String, with: String)] {
        let examples = candidates(48)
        let encoder = ExampleEncoder(tokenizer: tokenizer, template: .identity)
        let encoded = examples.map { encoder.encode($0, parseSpecial: true) }
        let evaluator = Evaluator(model: model, tokenizer: tokenizer, threads: 2)
        let without = try evaluator.evaluate(encoded, prompt: []).scores
        let with = try evaluator.evaluate(encoded, prompt: prompt.vectors).scores
        return examples.indices.compactMap { i in
            guard let a = without[i].predicted, let b = with[i].predicted, a != b else { return nil }
            let choices = examples[i].choices!
            return (examples[i], choices[a], choices[b])
        }
    }

    func dataset(_ rows: [TaskExample]) -> TaskDataset {
        TaskDataset(examples: rows, sha256: "", path: "rows.jsonl")
    }

    @Test func failsWhenThePromptIsWorseAndPassesOtherwise() throws {
        let C = model.config.hiddenSize
        var rng = SplitMix64(seed: 5)
        let vectors = (0 ..< 4 * C).map { _ in rng.nextFloat() * 2 }
        let prompt = SoftPrompt(name: "p", vectors: vectors, width: C)
        let flipped = try flippedRows(prompt)
        try #require(flipped.count >= 2, "the prompt should flip some predictions")
        let validator = PromptValidator(model: model, tokenizer: tokenizer)

        let worse = dataset(flipped.map { TaskExample(input: $0.0.input, output: $0.without, choices: $0.0.choices) })
        let fail = try validator.behaviourCheck(of: prompt, on: worse, threads: 2)
        #expect(fail.name == "behaviour" && fail.status == .fail, "\(fail.message)")
        #expect(fail.values["observed"]?.doubleValue == 0 && fail.values["baseline"]?.doubleValue == 1)
        #expect(fail.values["examples"]?.intValue == Int64(flipped.count))

        let better = dataset(flipped.map { TaskExample(input: $0.0.input, output: $0.with, choices: $0.0.choices) })
        let pass = try validator.behaviourCheck(of: prompt, on: better, threads: 2)
        #expect(pass.status == .pass, "\(pass.message)")
        #expect(pass.values["observed"]?.doubleValue == 1 && pass.values["baseline"]?.doubleValue == 0)

        // The stored template is applied: the metrics are those of the rows rendered through it.
        var templated = prompt
        templated.template = "Q {input} {input} A"
        let encoder = ExampleEncoder(tokenizer: tokenizer, template: try PromptTemplate("Q {input} {input} A"))
        let encoded = encoder.encode(better)
        let evaluator = Evaluator(model: model, tokenizer: tokenizer, threads: 2)
        let expectedWith = try #require(try evaluator.evaluate(encoded, prompt: prompt.vectors).accuracy)
        let expectedWithout = try #require(try evaluator.evaluate(encoded, prompt: []).accuracy)
        let other = try validator.behaviourCheck(of: templated, on: better, threads: 2)
        #expect(other.values["observed"]?.doubleValue == expectedWith)
        #expect(other.values["baseline"]?.doubleValue == expectedWithout)
        #expect(other.status == (expectedWith < expectedWithout ? .fail : .pass))
    }

    @Test func skipsWhenAPrerequisiteFailed() throws {
        let validator = PromptValidator(model: model, tokenizer: tokenizer)
        let report = ValidationReport(promptName: "p", checks: [ValidationCheck("width", .fail, "wrong width")])
        // The file does not exist: the check must not try to read it.
        let check = try validator.behaviourCheck(path: "/nonexistent/p.sprompt", prompt: nil,
                                                 dataset: dataset(candidates(2)), after: report)
        #expect(check.status == .skip && check.message == "not run: the width check failed")
    }
}
