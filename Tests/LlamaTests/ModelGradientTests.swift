import GGUF
import Llama
import TensorIO
import Testing
import TestSupport

/// The whole model's loss and d(soft prompt) against PyTorch (transformers loading the same GGUF;
/// `Tools/scripts/gen_gradient_fixture.py`): cosine >= 0.999 and relative error <= 1e-3.
@Suite(.enabled(if: TestSupport.defaultModelPath != nil, "default model not fetched (Tools/scripts/bootstrap.sh)"))
struct ModelGradientTests {
    @Test func softPromptGradientMatchesPyTorch() throws {
        let model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.defaultModelPath!))
        let fixture = try JSON.parse(try readFile(TestSupport.fixture("gradient/smollm2-gradient.json")))
        let prompt = try #require(try NPY.read(path: TestSupport.fixture("gradient/prompt8.npy")).floats())
        let ids = try #require(fixture["ids"]?.arrayValue).map { Int32($0.intValue!) }
        let targets = try #require(fixture["targets"]?.arrayValue).map {
            TokenTarget(row: Int($0[0]!.intValue!), token: Int32($0[1]!.intValue!))
        }
        let expected = try #require(fixture["gradient"]?.arrayValue).map { $0.doubleValue! }
        let n = prompt.count / model.config.hiddenSize
        let pass = PromptGradient(model: model, maxRows: 64, threads: 2)
        let result = try pass.compute([.embeddings(prompt), .tokens(ids)], targets: targets, gradientRows: n)

        let expectedLoss = try #require(fixture["loss"]?.doubleValue)
        #expect(abs(result.loss - expectedLoss) <= 1e-3 * expectedLoss, "loss \(result.loss) vs \(expectedLoss)")
        #expect(result.rowsProcessed == targets.map(\.row).max()! + 1)
        var dot = 0.0, na = 0.0, nb = 0.0, diff = 0.0
        for i in expected.indices {
            let a = Double(result.gradient[i]), b = expected[i]
            dot += a * b; na += a * a; nb += b * b; diff += (a - b) * (a - b)
        }
        let cosine = dot / (na.squareRoot() * nb.squareRoot())
        let relative = diff.squareRoot() / nb.squareRoot()
        print("soft-prompt gradient vs PyTorch: loss \(result.loss) vs \(expectedLoss), cosine \(cosine), relative error \(relative)")
        #expect(cosine >= 0.999, "cosine \(cosine)")
        #expect(relative <= 1e-3, "relative error \(relative)")
    }
}
