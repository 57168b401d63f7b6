import Quants
import TensorIO
import Testing

/// Opt-in timing of a large dequantization (not run by default).
///
/// Set `SOFTPROMPT_QUANT_BENCH=/path/prefix` where `prefix.bin` holds one tensor's raw bytes
/// (default type Q8_0; override with `SOFTPROMPT_QUANT_BENCH_TYPE=q4_1`) and, optionally,
/// `prefix.f32` its reference decoding (for example from gguf-py), which is then compared bit for
/// bit. Run in release mode: `swift test -c release --filter DequantizeBenchmark`.
@Suite("Dequantization benchmark", .enabled(if: environmentValue("SOFTPROMPT_QUANT_BENCH") != nil))
struct DequantizeBenchmark {
    @Test("dequantize a whole tensor")
    func run() throws {
        let prefix = try #require(environmentValue("SOFTPROMPT_QUANT_BENCH"))
        let type = try #require(GGMLType(name: environmentValue("SOFTPROMPT_QUANT_BENCH_TYPE") ?? "q8_0"))
        let file = try MappedFile(path: prefix + ".bin")
        let count = file.count / type.typeSize * type.blockSize
        var out = [Float](repeating: 0, count: count)
        var best = Duration.seconds(1000)
        for _ in 0 ..< 5 {
            let elapsed = try ContinuousClock().measure {
                try out.withUnsafeMutableBufferPointer {
                    try Quantization.dequantize(type, bytes: file.bytes, count: count, into: $0)
                }
            }
            best = min(best, elapsed)
        }
        print("dequantize \(type): \(count) elements, best of 5: \(best)")
        if fileExists(prefix + ".f32") {
            let reference = try MappedFile(path: prefix + ".f32")
            try #require(reference.count == 4 * count)
            let mismatch = (0 ..< count).first {
                out[$0].bitPattern != reference.bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)
            }
            #expect(mismatch == nil)
        }
    }
}
