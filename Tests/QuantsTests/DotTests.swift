import TestSupport
import Quants
import TensorIO
import Testing

@Suite("Reference dot product")
struct DotTests {
    /// `dot(type, row, v)` against the dequantized row dotted with `v` in Double. The Float
    /// sequential sum has error at most gamma_n * sum |a_i b_i| with gamma_n = n u / (1 - n u),
    /// u = 2^-24 (Higham, "Accuracy and Stability of Numerical Algorithms", 3.1), since each
    /// product a_i * b_i is itself rounded once; we allow that bound plus the products' rounding.
    @Test("matches dequantize-then-dot within the Float summation bound", arguments: DequantizeTests.supported)
    func matchesDoubleReference(type: GGMLType) throws {
        let raw = try Fixtures.bytes(Fixtures.stem(type) + ".bin")
        let values = try Fixtures.floats(Fixtures.stem(type) + ".f32")
        var rng = SplitMix64(seed: UInt64(type.rawValue) + 1)
        let vector = (0 ..< values.count).map { _ in rng.nextFloat() }
        let got = try raw.withUnsafeBytes { row in
            try vector.withUnsafeBufferPointer { try Quantization.dot(type, row: row, $0) }
        }
        if values.contains(where: { !$0.isFinite }) {
            #expect(got.isNaN || got.isInfinite, "\(type)")  // F16/F32/BF16/F64 fixtures hold inf/NaN
            return
        }
        var exact = 0.0, magnitude = 0.0
        for i in values.indices {
            exact += Double(values[i]) * Double(vector[i])
            magnitude += abs(Double(values[i]) * Double(vector[i]))
        }
        let u = 0x1p-24, n = Double(values.count + 1)
        let bound = n * u / (1 - n * u) * magnitude
        #expect(abs(Double(got) - exact) <= bound, "\(type): \(got) vs \(exact), bound \(bound)")
    }

    @Test("dot of a row with a one-hot vector picks out one decoded element")
    func oneHot() throws {
        let raw = try Fixtures.bytes("q6_k.bin")
        let values = try Fixtures.floats("q6_k.f32")
        let row = Array(raw[0 ..< 210])
        for k in [0, 17, 130, 255] {
            var v = [Float](repeating: 0, count: 256)
            v[k] = 1
            let got = try row.withUnsafeBytes { r in try v.withUnsafeBufferPointer { try BlockQ6_K.dot(r, $0) } }
            #expect(got == values[k])
        }
    }

    @Test("size errors are typed")
    func errors() throws {
        let row = [UInt8](repeating: 0, count: 34)
        let v = [Float](repeating: 1, count: 64)
        #expect(throws: QuantError.byteCountMismatch(type: .q8_0, count: 64, expected: 68, actual: 34)) {
            try row.withUnsafeBytes { r in try v.withUnsafeBufferPointer { try Quantization.dot(.q8_0, row: r, $0) } }
        }
        #expect(throws: QuantError.unsupported(type: .tq2_0, operation: "dot")) {
            try row.withUnsafeBytes { r in try v.withUnsafeBufferPointer { try Quantization.dot(.tq2_0, row: r, $0) } }
        }
    }
}
