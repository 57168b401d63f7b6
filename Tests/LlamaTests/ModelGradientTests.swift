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
        let f = try PyTorchGradientFixture()
        let pass = PromptGradient(model: f.model, maxRows: 64, threads: 2)
        let result = try pass.computeBatch(prompt: f.prompt, examples: [PromptExample(tokens: f.ids, targets: f.targets)])
        #expect(result.positionsProcessed == f.targets.map(\.row).max()! + 1)
        f.check(loss: result.loss, gradient: result.gradient, label: "soft-prompt gradient")
    }
}

/// The PyTorch dump (`Tools/scripts/gen_gradient_fixture.py`) and the bar every training pass must meet:
/// loss within 1e-3 relative, gradient cosine >= 0.999 and relative error <= 1e-3.
struct PyTorchGradientFixture {
    let model: LlamaModel
    let prompt: [Float]
    let ids: [Int32]
    let targets: [TokenTarget]
    let expected: [Double]
    let expectedLoss: Double

    init() throws {
        model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.defaultModelPath!))
        let fixture = try JSON.parse(try readFile(TestSupport.fixture("gradient/smollm2-gradient.json")))
        prompt = try #require(try NPY.read(path: TestSupport.fixture("gradient/prompt8.npy")).floats())
        ids = try #require(fixture["ids"]?.arrayValue).map { Int32($0.intValue!) }
        targets = try #require(fixture["targets"]?.arrayValue).map {
            TokenTarget(row: Int($0[0]!.intValue!), token: Int32($0[1]!.intValue!))
        }
        expected = try #require(fixture["gradient"]?.arrayValue).map { $0.doubleValue! }
        expectedLoss = try #require(fixture["loss"]?.doubleValue)
    }

    func check(loss: Double, gradient: [Float], label: String) {
        #expect(abs(loss - expectedLoss) <= 1e-3 * expectedLoss, "loss \(loss) vs \(expectedLoss)")
        var dot = 0.0, na = 0.0, nb = 0.0, diff = 0.0
        for i in expected.indices {
            let a = Double(gradient[i]), b = expected[i]
            dot += a * b; na += a * a; nb += b * b; diff += (a - b) * (a - b)
        }
        let cosine = dot / (na.squareRoot() * nb.squareRoot())
        let relative = diff.squareRoot() / nb.squareRoot()
        print("\(label) vs PyTorch: loss \(loss) vs \(expectedLoss), cosine \(cosine), relative error \(relative)")
        #expect(cosine >= 0.999, "cosine \(cosine)")
        #expect(relative <= 1e-3, "relative error \(relative)")
    }
}
