import TestSupport
import Quants
import TensorIO
import Testing

@Suite("Quantization")
struct QuantizeTests {
    /// The types gguf-py can quantize, hence byte-comparable with its fixtures.
    static let ggufPyQuantizable: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .bf16, .f16]

    static let quantizable: [GGMLType] = [
        .f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K,
    ]

    @Test("the quantizable list")
    func quantizableList() {
        #expect(Quantization.quantizableTypes == Self.quantizable.sorted { $0.rawValue < $1.rawValue })
    }

    /// Oracle (a): gguf-py's quantizers, which mirror ggml's quantize_row_*_ref. The input has
    /// zero, constant, one-sign, spike, tiny, huge and exact-tie blocks.
    @Test("byte-identical with gguf.quants.quantize", arguments: ggufPyQuantizable)
    func byteIdentical(type: GGMLType) throws {
        let input = try Fixtures.floats("quantize_input.f32")
        let expected = try Fixtures.bytes(Fixtures.stem(type) + ".quant.bin")
        let got = try quantize(type, input)
        #expect(got.count == expected.count)
        let bad = got.indices.first { got[$0] != expected[$0] }
        #expect(bad == nil, "\(type): first differing byte \(bad ?? -1) (block \((bad ?? 0) / type.typeSize))")
    }

    /// Oracle (b): llama.cpp tests/test-quantize-fns.cpp budgets. There, `total_quantization_error`
    /// is `sqrtf(sum (x - dequantize(quantize(x)))^2) / n` on n = 4096 values `0.1 + 2 cos(i)`,
    /// and must stay below MAX_QUANTIZATION_TOTAL_ERROR = 0.002 (2-bit: 0.0075, 3-bit: 0.0040).
    /// The dot-product check is the same file's: |dot(q(a), b) - dot(a, b)| / n below 0.02
    /// (Q2_K: 0.04); ggml also quantizes b there, we keep it in float.
    @Test("error within ggml's test-quantize-fns budgets", arguments: quantizable)
    func errorBudget(type: GGMLType) throws {
        let n = 32 * 128
        let a = ggmlSyntheticData(count: n, offset: 0)
        let b = ggmlSyntheticData(count: n, offset: 1)
        let q = try quantize(type, a)
        let back = try dequantize(type, q, count: n)
        let error = ggmlArrayRMSE(a, back)
        let budget: Float =
            switch type {
            case .q2_K: 0.0075
            case .q3_K: 0.0040
            default: 0.002
            }
        #expect(error < budget, "\(type) total quantization error \(error)")

        var exact = 0.0
        for i in 0 ..< n { exact += Double(a[i] * b[i]) }
        let dot = try q.withUnsafeBytes { row in
            try b.withUnsafeBufferPointer { try Quantization.dot(type, row: row, $0) }
        }
        let dotBudget: Float = type == .q2_K ? 0.04 : 0.02
        #expect(abs(dot - Float(exact)) / Float(n) < dotBudget, "\(type) dot error")
    }

    /// Oracle (c): re-quantizing a decoded block reproduces it. This holds exactly for the
    /// one-pass formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, and F16/BF16/F32) as long as the half
    /// scale is a normal number and, for the formats with a minimum, |m| / d is not so large that
    /// `q * d + m` loses a step to rounding. It does not hold for the K-quants (their scale search
    /// and 6/8-bit sub-scale rounding can land on a different but equally good encoding) nor for
    /// Q8_K (its float `d = 1 / iscale` can move by an ulp); for those, a second round trip must
    /// stay as close to the input as the first (checked below).
    @Test("quantize(dequantize(q)) == q for the one-pass formats",
          arguments: [GGMLType.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .f16, .bf16, .f32])
    func roundTrip(type: GGMLType) throws {
        var inputs = ggmlSyntheticData(count: 4096, offset: 0.5)
        var rng = SplitMix64(seed: 7)
        for i in inputs.indices { inputs[i] = inputs[i] * Float(i % 7 + 1) + rng.nextFloat() }
        let q = try quantize(type, inputs)
        let again = try quantize(type, try dequantize(type, q, count: inputs.count))
        #expect(q == again, "\(type)")
    }

    @Test("K-quants and Q8_K: a second round trip is no worse than the first",
          arguments: [GGMLType.q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K])
    func kQuantStability(type: GGMLType) throws {
        let x = ggmlSyntheticData(count: 4096, offset: 0.25)
        let once = try dequantize(type, try quantize(type, x), count: x.count)
        let twice = try dequantize(type, try quantize(type, once), count: x.count)
        let first = ggmlArrayRMSE(x, once), second = ggmlArrayRMSE(once, twice)
        #expect(second <= first, "\(type): \(second) vs \(first)")
    }

    @Test("all-zero input encodes to zero values", arguments: quantizable)
    func zeros(type: GGMLType) throws {
        let x = [Float](repeating: 0, count: 512)
        let back = try dequantize(type, try quantize(type, x), count: x.count)
        #expect(back.allSatisfy { $0 == 0 }, "\(type)")
    }

    @Test("non-finite input is refused for block types; the float types encode it")
    func nonFinite() throws {
        var x = [Float](repeating: 1, count: 256)
        x[37] = .nan
        for type in Self.quantizable where type.blockSize > 1 {
            #expect(throws: QuantError.nonFiniteInput(index: 37)) { try quantize(type, x) }
        }
        x[37] = .infinity
        #expect(throws: QuantError.nonFiniteInput(index: 37)) { try quantize(.q8_0, x) }
        let f16 = try dequantize(.f16, try quantize(.f16, x), count: 256)
        #expect(f16[37] == .infinity)
        x[37] = .nan
        let bf16 = try dequantize(.bf16, try quantize(.bf16, x), count: 256)
        #expect(bf16[37].isNaN)
    }

    @Test("unsupported targets and bad sizes are typed errors")
    func refusals() throws {
        let x = [Float](repeating: 1, count: 32)
        for type in GGMLType.allCases where !Self.quantizable.contains(type) {
            #expect(throws: QuantError.unsupported(type: type, operation: "quantize")) {
                try quantize(type, [Float](repeating: 1, count: type.blockSize))
            }
        }
        #expect(throws: QuantError.partialBlock(type: .q4_K, count: 32)) { try quantize(.q4_K, x) }
        var out = [UInt8](repeating: 0, count: 10)
        #expect(throws: QuantError.byteCountMismatch(type: .q8_0, count: 32, expected: 34, actual: 10)) {
            try x.withUnsafeBufferPointer { src in
                try out.withUnsafeMutableBytes { try Quantization.quantize(.q8_0, src, into: $0) }
            }
        }
        #expect(try quantize(.q4_0, []).isEmpty)
    }

    /// Blocks whose largest magnitude is subnormal make `1 / d` overflow to infinity, so the C
    /// reference converts inf/NaN to int (undefined behaviour; x86 yields 0x80000000). Our
    /// conversions mimic x86 and must never trap; the result must have the right size and decode
    /// to finite values.
    @Test("tiny inputs do not trap", arguments: quantizable)
    func tinyInputs(type: GGMLType) throws {
        var x = [Float](repeating: 0, count: 256)
        for i in x.indices { x[i] = Float(i % 5) * (Float.leastNormalMagnitude / 16) * (i % 2 == 0 ? 1 : -1) }
        let q = try quantize(type, x)
        #expect(q.count == type.byteCount(elements: 256))
        let back = try dequantize(type, q, count: 256)
        #expect(back.allSatisfy { $0.isFinite })
    }
}

