import GGUF
import Quants
import TensorIO
import Testing
import TestSupport

/// The real model's tensors, dequantized through the mapped GGUF, against gguf-py
/// (`Tools/scripts/gen_model_dequant_fixture.py`): selected rows bit for bit, whole tensors by sums.
@Suite(.enabled(if: TestSupport.defaultModelPath != nil, "default model not fetched (Tools/scripts/bootstrap.sh)"))
struct ModelDequantizationTests {
    @Test func realTensorsMatchGGUFPy() throws {
        let file = try GGUFFile(path: TestSupport.defaultModelPath!)
        let fixture = try JSON.parse(try readFile(TestSupport.fixture("gguf/smollm2-dequant.json")))
        let tensors = try #require(fixture["tensors"]?.arrayValue)
        #expect(tensors.count == 4)
        for entry in tensors {
            let name = try #require(entry["name"]?.stringValue)
            let info = try #require(file.tensor(named: name), "missing \(name)")
            #expect(info.type.name == entry["type"]?.stringValue)
            let values = try Quantization.dequantize(info.type, bytes: file.data(for: info), count: info.elementCount)
            let width = info.shape[0]
            for (row, bits) in try #require(entry["rows"]?.objectValue) {
                let r = try #require(Int(row))
                let expected = try #require(bits.arrayValue).map { UInt32($0.intValue!) }
                let ours = values[r * width ..< (r + 1) * width].map(\.bitPattern)
                #expect(Array(ours) == expected, "\(name) row \(r)")
            }
            var sum = 0.0, sumAbs = 0.0
            for v in values { sum += Double(v); sumAbs += Double(abs(v)) }
            let expectedAbs = try #require(entry["sum_abs"]?.doubleValue)
            // Same float32 values summed in float64 in another order: equal to ~1e-12 relative.
            #expect(abs(sumAbs - expectedAbs) <= 1e-9 * expectedAbs, "\(name) sum |x|")
            #expect(abs(sum - (entry["sum"]?.doubleValue ?? .nan)) <= 1e-9 * expectedAbs, "\(name) sum")
        }
    }
}
