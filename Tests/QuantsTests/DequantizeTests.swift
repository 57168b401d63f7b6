import Quants
import TensorIO
import Testing

@Suite("Dequantization against gguf-py")
struct DequantizeTests {
    static let supported: [GGMLType] = [
        .f32, .f16, .bf16, .f64, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0,
        .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq4_NL, .iq4_XS,
    ]

    @Test("the supported list is exactly the brief's")
    func supportedList() {
        #expect(Quantization.dequantizableTypes == Self.supported.sorted { $0.rawValue < $1.rawValue })
    }

    /// Whole fixture file through `Quantization.dequantize`, compared bit for bit with gguf-py
    /// (numpy, hence ggml's dequantize_row_* without FMA).
    @Test("bit-exact with gguf.quants.dequantize", arguments: supported)
    func bitExact(type: GGMLType) throws {
        let raw = try Fixtures.bytes(Fixtures.stem(type) + ".bin")
        let expected = try Fixtures.floats(Fixtures.stem(type) + ".f32")
        #expect(type.byteCount(elements: expected.count) == raw.count)
        let got = try dequantize(type, raw, count: expected.count)
        let bad = firstBitMismatch(got, expected)
        #expect(bad == nil, "\(type) first mismatch at \(bad ?? -1): \(bad.map { "\(got[$0]) vs \(expected[$0])" } ?? "")")
    }

    /// Each block decoded on its own through the format's `dequantizeRow` (the per-row entry point
    /// later matrix code uses) gives the same bits.
    @Test("per-block dequantizeRow matches", arguments: supported)
    func perBlock(type: GGMLType) throws {
        let raw = try Fixtures.bytes(Fixtures.stem(type) + ".bin")
        let expected = try Fixtures.floats(Fixtures.stem(type) + ".f32")
        let format = try #require(Quantization.format(for: type))
        #expect(format.type == type)
        let blocks = raw.count / type.typeSize
        var out = [Float](repeating: .nan, count: type.blockSize)
        for b in 0 ..< blocks {
            try raw.withUnsafeBytes { all in
                let block = UnsafeRawBufferPointer(rebasing: all[b * type.typeSize ..< (b + 1) * type.typeSize])
                try out.withUnsafeMutableBufferPointer { try format.dequantizeRow(block, into: $0) }
            }
            let want = Array(expected[b * type.blockSize ..< (b + 1) * type.blockSize])
            #expect(firstBitMismatch(out, want) == nil, "\(type) block \(b)")
        }
    }

    @Test("the into: variant writes the same values")
    func intoVariant() throws {
        let raw = try Fixtures.bytes("q4_k.bin")
        let expected = try Fixtures.floats("q4_k.f32")
        var out = [Float](repeating: 0, count: expected.count)
        try raw.withUnsafeBytes { src in
            try out.withUnsafeMutableBufferPointer {
                try Quantization.dequantize(.q4_K, bytes: src, count: expected.count, into: $0)
            }
        }
        #expect(firstBitMismatch(out, expected) == nil)
    }

    @Test("F16 signaling NaN decodes to a quiet NaN with the same payload")
    func f16SignalingNaN() throws {
        let got = try dequantize(.f16, [0x01, 0x7C], count: 1)  // 0x7C01
        #expect(got[0].isNaN && !got[0].isSignalingNaN)
        #expect(got[0].bitPattern == 0x7FC0_2000)
    }

    @Test("empty input decodes to nothing")
    func empty() throws {
        for type in Self.supported {
            #expect(try dequantize(type, [], count: 0).isEmpty)
        }
    }

    @Test("types without a decoder are refused with a typed error naming the supported types")
    func unsupported() throws {
        for type in GGMLType.allCases where !Self.supported.contains(type) {
            let bytes = [UInt8](repeating: 0, count: type.typeSize)
            #expect(throws: QuantError.unsupported(type: type, operation: "dequantize")) {
                try dequantize(type, bytes, count: type.blockSize)
            }
        }
        let message = QuantError.unsupported(type: .iq2_XXS, operation: "dequantize").description
        #expect(message.contains("IQ2_XXS") && message.contains("Q4_K") && message.contains("IQ4_XS"))
    }

    @Test("inconsistent sizes are refused, never trapped")
    func sizeValidation() throws {
        let block = [UInt8](repeating: 0, count: 18)
        #expect(throws: QuantError.partialBlock(type: .q4_0, count: 31)) {
            try dequantize(.q4_0, block, count: 31)
        }
        #expect(throws: QuantError.partialBlock(type: .q4_0, count: -32)) {
            try dequantize(.q4_0, block, count: -32)
        }
        #expect(throws: QuantError.byteCountMismatch(type: .q4_0, count: 64, expected: 36, actual: 18)) {
            try dequantize(.q4_0, block, count: 64)
        }
        #expect(throws: QuantError.byteCountMismatch(type: .q4_0, count: 0, expected: 0, actual: 18)) {
            try dequantize(.q4_0, block, count: 0)
        }
        let huge = Int.max - Int.max % 256
        #expect(throws: QuantError.byteCountMismatch(type: .q8_K, count: huge, expected: nil, actual: 18)) {
            try dequantize(.q8_K, block, count: huge)
        }
        var small = [Float](repeating: 0, count: 16)
        #expect(throws: QuantError.elementCountMismatch(expected: 32, actual: 16)) {
            try block.withUnsafeBytes { src in
                try small.withUnsafeMutableBufferPointer {
                    try Quantization.dequantize(.q4_0, bytes: src, count: 32, into: $0)
                }
            }
        }
        // Direct format call with a wrong-sized output.
        #expect(throws: QuantError.partialBlock(type: .q4_0, count: 16)) {
            try block.withUnsafeBytes { src in
                try small.withUnsafeMutableBufferPointer { try BlockQ4_0.dequantizeRow(src, into: $0) }
            }
        }
    }

    @Test("hand-computed Q4_1 and Q6_K blocks")
    func handComputed() throws {
        // Q4_1: d = 0.5 (0x3800), m = -1 (0xBC00); qs[0] = 0x3A: element 0 is 10, element 16 is 3.
        var q41 = [UInt8](repeating: 0, count: 20)
        q41[0] = 0x00; q41[1] = 0x38; q41[2] = 0x00; q41[3] = 0xBC; q41[4] = 0x3A
        let a = try dequantize(.q4_1, q41, count: 32)
        #expect(a[0] == 10 * 0.5 - 1 && a[16] == 3 * 0.5 - 1 && a[1] == -1)
        // Q6_K all zero except d = 1 and scales[0] = 2: every q is -32, so the first 16 decode to
        // 1 * 2 * -32 and the rest to 1 * 0 * -32 = -0.0 (sign kept: bit-exact compare matters).
        var q6 = [UInt8](repeating: 0, count: 210)
        q6[192] = 2; q6[208] = 0x00; q6[209] = 0x3C
        let b = try dequantize(.q6_K, q6, count: 256)
        #expect(b[0] == -64 && b[15] == -64)
        #expect(b[16].bitPattern == (-0.0 as Float).bitPattern)
    }
}
