import GGUF
import Llama
import TensorIO
import Testing
import TestSupport

/// Our float32 exact path against the float64 reference (`Tools/scripts/exact_reference.py`, dumped by
/// `Tools/scripts/gen_llama_fixtures.py`): at every position of every prompt, the top-32 logits, 256
/// probe logits and the logsumexp within 0.02, and greedy continuations identical up to the first near-tie.
@Suite(.enabled(if: TestSupport.defaultModelPath != nil, "default model not fetched (Tools/scripts/bootstrap.sh)"))
struct ExactReferenceTests {
    static let tolerance: Double = 0.02

    let model: LlamaModel
    let fixture: JSONValue

    init() throws {
        model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.defaultModelPath!))
        fixture = try JSON.parse(try readFile(TestSupport.fixture("llama/smollm2-exact.json")))
    }

    @Test func logitsMatchTheExactReference() throws {
        let probe = try #require(fixture["probe_ids"]?.arrayValue).map { Int($0.intValue!) }
        let V = model.config.vocabSize
        for testCase in try #require(fixture["cases"]?.arrayValue) {
            let name = testCase["name"]?.stringValue ?? "?"
            let ids = try #require(testCase["ids"]?.arrayValue).map { Int32($0.intValue!) }
            var inputs: [ModelInput] = []
            if let file = testCase["embeddings"]?.stringValue {
                let array = try NPY.read(path: TestSupport.fixture("llama/" + file))
                inputs.append(.embeddings(try #require(array.floats())))
            }
            inputs.append(.tokens(ids))
            let session = try InferenceSession(model: model, capacity: 256, threads: 2)
            let logits = try session.forward(inputs, logits: .all)
            let positions = try #require(testCase["positions"]?.arrayValue)
            #expect(logits.count == positions.count * V)
            var worst = 0.0
            for (t, expected) in positions.enumerated() {
                let row = logits[t * V ..< (t + 1) * V].map(Double.init)
                let top = try #require(expected["top_ids"]?.arrayValue).map { Int($0.intValue!) }
                let topValues = try #require(expected["top_values"]?.arrayValue).map { $0.doubleValue! }
                let probeValues = try #require(expected["probe_values"]?.arrayValue).map { $0.doubleValue! }
                for (i, id) in top.enumerated() { worst = max(worst, abs(row[id] - topValues[i])) }
                for (i, id) in probe.enumerated() { worst = max(worst, abs(row[id] - probeValues[i])) }
                let m = row.max()!
                var s = 0.0
                for v in row { s += _exp(v - m) }
                let lse = m + _log(s)
                worst = max(worst, abs(lse - expected["logsumexp"]!.doubleValue!))
                var norm = 0.0
                for v in row { norm += v * v }
                let expectedNorm = expected["norm"]!.doubleValue!
                #expect(abs(norm.squareRoot() - expectedNorm) <= 1e-4 * expectedNorm, "\(name) position \(t): norm")
            }
            #expect(worst <= Self.tolerance, "\(name): max abs logit difference \(worst)")
        }
    }

    @Test func greedyContinuationMatchesUpToTheFirstNearTie() throws {
        for entry in try #require(fixture["greedy"]?.arrayValue) {
            let ids = try #require(entry["ids"]?.arrayValue).map { Int32($0.intValue!) }
            let expected = try #require(entry["tokens"]?.arrayValue).map { Int32($0.intValue!) }
            let margins = try #require(entry["top2_margins"]?.arrayValue).map { $0.doubleValue! }
            let session = try InferenceSession(model: model, capacity: 256, threads: 2)
            var logits = try session.forward([.tokens(ids)], logits: .last)
            for step in 0 ..< expected.count {
                var best = 0
                for v in 1 ..< logits.count where logits[v] > logits[best] { best = v }
                if margins[step] < 0.05 { break }  // a near-tie: either token is right, the texts may part here
                #expect(Int32(best) == expected[step], "\(entry["name"]?.stringValue ?? "?") step \(step)")
                if Int32(best) != expected[step] { break }
                logits = try session.forward([.tokens([Int32(best)])], logits: .last)
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
func _exp(_ x: Double) -> Double { Glibc.exp(x) }
func _log(_ x: Double) -> Double { Glibc.log(x) }
#endif
