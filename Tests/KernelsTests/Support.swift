import CKernels
import Quants
import TensorIO
import TestSupport
import Testing

/// Test plumbing for the C kernels: kernel sets, random data, fixtures.
enum KT {
    /// Every kernel set this machine runs (scalar first), with its name.
    static var kernelSets: [(name: String, kern: OpaquePointer)] {
        var count: Int32 = 0
        let all = spk_kernels_all(&count)!
        return (0 ..< Int(count)).map { i in
            let k = all[i]!
            return (String(cString: spk_kernels_name(k)), k)
        }
    }

    static var scalar: OpaquePointer { spk_kernels_get(SPK_ISA_SCALAR)! }

    /// The level a kernel set's name stands for ("avx2-vnni" is an AVX2 set).
    static func level(named name: String) -> spk_isa? {
        ["scalar": SPK_ISA_SCALAR, "avx2": SPK_ISA_AVX2, "avx2-vnni": SPK_ISA_AVX2, "avx512": SPK_ISA_AVX512][name]
    }

    /// The SIMD levels this CPU has, lowest first ("avx2", "avx512"): the per-level test arguments.
    static let simdLevels = [("avx2", SPK_ISA_AVX2), ("avx512", SPK_ISA_AVX512)].filter { has($0.1) }.map { $0.0 }

    /// Whether this CPU (and OS) runs `level`.
    static func has(_ level: spk_isa) -> Bool { spk_detect_isa().rawValue >= level.rawValue }

    /// What this run tests, for the log: the detected level, the sets under test and the levels skipped.
    static var levelReport: String {
        let skipped = [SPK_ISA_AVX2, SPK_ISA_AVX512].filter { !has($0) }.map { String(cString: spk_isa_name($0)) }
            + (has(SPK_ISA_AVX2) && spk_has_avx_vnni() == 0 ? ["avx2-vnni"] : [])
        return "CPU level \(String(cString: spk_isa_name(spk_detect_isa()))), active set \(String(cString: spk_kernels_name(nil))); "
            + "kernel sets tested: \(kernelSets.map(\.name).joined(separator: ", "))"
            + (skipped.isEmpty ? "" : "; not on this CPU (skipped): \(skipped.joined(separator: ", "))")
    }

    static let f32 = Int32(SPK_TYPE_F32), f16 = Int32(SPK_TYPE_F16), bf16 = Int32(SPK_TYPE_BF16)
    static let q4_0 = Int32(SPK_TYPE_Q4_0), q4_1 = Int32(SPK_TYPE_Q4_1), q8_0 = Int32(SPK_TYPE_Q8_0)
    static let q8_1 = Int32(SPK_TYPE_Q8_1), q4_K = Int32(SPK_TYPE_Q4_K), q6_K = Int32(SPK_TYPE_Q6_K)
    static let q8_K = Int32(SPK_TYPE_Q8_K)

    static let weightTypes: [(name: String, type: Int32)] = [
        ("F32", f32), ("F16", f16), ("BF16", bf16), ("Q4_0", q4_0), ("Q4_1", q4_1), ("Q8_0", q8_0),
        ("Q4_K", q4_K), ("Q6_K", q6_K),
    ]
    static let int8Types: [(name: String, type: Int32)] = weightTypes.filter { spk_vec_dot_type($0.type) >= 0 }

    static func isKQuant(_ t: Int32) -> Bool { t == q4_K || t == q6_K }

    static func rowBytes(_ type: Int32, _ k: Int) -> Int { spk_row_bytes(type, Int64(k)) }

    /// Random weight rows of a type: random bytes, with every scale field set to a finite f16 (so no
    /// block holds NaN or infinity) and plain float types drawn from a normal-ish distribution.
    static func randomWeights(_ type: Int32, rows: Int, k: Int, rng: inout SplitMix64) -> [UInt8] {
        let rb = rowBytes(type, k)
        var w = (0 ..< rows * rb).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
        func put16(_ v: UInt16, _ at: Int) {
            w[at] = UInt8(v & 0xFF)
            w[at + 1] = UInt8(v >> 8)
        }
        func scale() -> UInt16 { HalfFloat.floatToF16(Float.random(in: -0.02 ... 0.02, using: &rng)) }
        let bs = Int(spk_type_block_size(type)), bb = spk_type_block_bytes(type)
        for r in 0 ..< rows {
            for b in 0 ..< k / bs {
                let at = r * rb + b * bb
                switch type {
                case f32:
                    let bits = Float.random(in: -2 ... 2, using: &rng).bitPattern
                    for i in 0 ..< 4 { w[at + i] = UInt8((bits >> (8 * UInt32(i))) & 0xFF) }
                case f16: put16(HalfFloat.floatToF16(Float.random(in: -2 ... 2, using: &rng)), at)
                case bf16: put16(HalfFloat.floatToBF16(Float.random(in: -2 ... 2, using: &rng)), at)
                case q4_0, q8_0: put16(scale(), at)
                case q4_1, q4_K: put16(scale(), at); put16(scale(), at + 2)
                case q6_K: put16(scale(), at + 208)
                default: break
                }
            }
        }
        return w
    }

    static func randomFloats(_ n: Int, rng: inout SplitMix64, scale: Float = 1) -> [Float] {
        (0 ..< n).map { _ in Float.random(in: -scale ... scale, using: &rng) }
    }

    /// Quantizes M rows of X (K columns) to the int8 partner of `type`.
    static func quantize(_ x: [Float], m: Int, k: Int, for type: Int32) -> (bytes: [UInt8], rowBytes: Int) {
        let act = spk_vec_dot_type(type)
        let rb = rowBytes(act, k)
        var out = [UInt8](repeating: 0, count: m * rb)
        let rc = x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBytes { op in
                spk_quantize_rows(nil, act, xp.baseAddress, Int32(m), Int32(k), Int32(k), op.baseAddress, rb)
            }
        }
        precondition(rc == 0)
        return (out, rb)
    }

    /// `count` weights decoded by the project's reference dequantizer (`Quantization.dequantize`).
    static func referenceDequantized(_ type: Int32, _ w: [UInt8], count: Int) throws -> [Float] {
        let t = try #require(GGMLType(rawValue: UInt32(type)))
        return try w.withUnsafeBytes { try Quantization.dequantize(t, bytes: $0, count: count) }
    }

    /// The weights (n × k, row-major) as the matmul of `kern` decodes them: `X · Wᵀ` with X the
    /// identity, 4 rows per call (the few-row kernels) and all k rows in one call (the panel kernels)
    /// must agree. Each output is an fma chain with one non-zero product, so it is the decoded weight
    /// exactly (up to the sign of a zero, hence the compare by value).
    static func decodedByMatmul(_ kern: OpaquePointer, _ type: Int32, _ w: [UInt8], n: Int, k: Int) -> [Float] {
        var identity = [Float](repeating: 0, count: k * k)
        for i in 0 ..< k { identity[i * k + i] = 1 }
        var panel = [Float](repeating: .nan, count: k * n)
        precondition(matmul(kern, type, w, n: n, k: k, identity, m: k, into: &panel) == 0)
        var out = [Float](repeating: .nan, count: n * k)
        for r in 0 ..< n { for c in 0 ..< k { out[r * k + c] = panel[c * n + r] } }
        for start in stride(from: 0, to: k, by: 4) {
            var few = [Float](repeating: .nan, count: 4 * n)
            precondition(matmul(kern, type, w, n: n, k: k, Array(identity[start * k ..< (start + 4) * k]), m: 4, into: &few) == 0)
            for i in 0 ..< 4 { for r in 0 ..< n where few[i * n + r] != out[r * k + start + i] { out[r * k + start + i] = .nan } }
        }
        return out
    }

    // ---- Calls with Swift arrays ----------------------------------------------------------------

    static func matmul(_ kern: OpaquePointer, _ type: Int32, _ w: [UInt8], rows: ClosedRange<Int>? = nil, n: Int,
                       k: Int, _ x: [Float], m: Int, into y: inout [Float]) -> Int32 {
        let range = rows ?? 0 ... n - 1
        return w.withUnsafeBytes { wp in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    spk_matmul_f32(kern, type, wp.baseAddress, rowBytes(type, k), Int32(range.lowerBound),
                                   Int32(range.upperBound + 1), Int32(k), xp.baseAddress, Int32(m), Int32(k),
                                   yp.baseAddress, Int32(n))
                }
            }
        }
    }

    static func matmulT(_ kern: OpaquePointer, _ type: Int32, _ w: [UInt8], n: Int, k: Int, _ dy: [Float], m: Int,
                        into dx: inout [Float], columns: Range<Int>? = nil) -> Int32 {
        let cols = columns ?? 0 ..< k
        return w.withUnsafeBytes { wp in
            dy.withUnsafeBufferPointer { dyp in
                dx.withUnsafeMutableBufferPointer { dxp in
                    spk_matmul_t_f32(kern, type, wp.baseAddress, rowBytes(type, k), Int32(n), Int32(k), dyp.baseAddress,
                                     Int32(m), Int32(n), dxp.baseAddress, Int32(k), Int32(cols.lowerBound),
                                     Int32(cols.upperBound))
                }
            }
        }
    }

    static func matmulQ8(_ kern: OpaquePointer, _ type: Int32, _ w: [UInt8], rows: ClosedRange<Int>? = nil, n: Int,
                         k: Int, _ xq: [UInt8], xqRowBytes: Int, m: Int, into y: inout [Float]) -> Int32 {
        let range = rows ?? 0 ... n - 1
        return w.withUnsafeBytes { wp in
            xq.withUnsafeBytes { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    spk_matmul_q8(kern, type, wp.baseAddress, rowBytes(type, k), Int32(range.lowerBound),
                                  Int32(range.upperBound + 1), Int32(k), xp.baseAddress, xqRowBytes, Int32(m),
                                  yp.baseAddress, Int32(n))
                }
            }
        }
    }

    // ---- Fixtures -------------------------------------------------------------------------------

    static func fixture(_ name: String) throws -> NPY.Array {
        try NPY.read(path: TestSupport.fixture("kernels/\(name).npy"))
    }

    static func doubles(_ a: NPY.Array) -> [Double] {
        let n = a.shape.reduce(1, *)
        return a.data.withUnsafeBytes { raw in
            switch a.dtype {
            case .f64: (0 ..< n).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
            case .f32: (0 ..< n).map { Double(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self)) }
            default: []
            }
        }
    }

    static func floats(_ a: NPY.Array) -> [Float] { doubles(a).map { Float($0) } }

    /// Bit patterns, for exact comparisons that treat -0 and NaN payloads strictly.
    static func bits(_ v: [Float]) -> [UInt32] { v.map(\.bitPattern) }

    /// The first index where two arrays differ (nil if equal), to keep failure messages short.
    static func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> Int? {
        if a.count != b.count { return min(a.count, b.count) }
        return a.indices.first { a[$0] != b[$0] }
    }
}

