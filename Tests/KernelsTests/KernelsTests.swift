#if canImport(Glibc)
import Glibc
#endif
import CKernels
import Quants
import TensorIO
import TestSupport
import Testing

@Suite struct DispatchTests {
    @Test func kernelSetsAreClampedToTheMachine() {
        let best = spk_detect_isa()
        let sets = KT.kernelSets
        #expect(sets.first?.name == "scalar")
        #expect(Set(sets.map(\.name)).count == sets.count)
        for s in sets { #expect(spk_kernels_isa(s.kern).rawValue <= best.rawValue, "\(s.name)") }
        // Asking for more than the machine has gives the best it has, never more.
        #expect(spk_kernels_isa(spk_kernels_get(SPK_ISA_AVX512)).rawValue == best.rawValue)
        #expect(spk_kernels_isa(spk_kernels_get(SPK_ISA_SCALAR)) == SPK_ISA_SCALAR)
        #expect(String(cString: spk_isa_name(SPK_ISA_AVX2)) == "avx2")
        // The list ckernels.h promises: scalar, then each level up to the detected one, with the
        // AVX-VNNI variant of AVX2 exactly when the CPU has AVX-VNNI.
        var want = ["scalar"]
        if best.rawValue >= SPK_ISA_AVX2.rawValue { want += spk_has_avx_vnni() != 0 ? ["avx2", "avx2-vnni"] : ["avx2"] }
        if best == SPK_ISA_AVX512 { want.append("avx512") }
        #expect(sets.map(\.name) == want)
        for s in sets { #expect(spk_kernels_isa(s.kern) == KT.level(named: s.name), "\(s.name)") }
        #if !arch(x86_64)
        #expect(best == SPK_ISA_SCALAR)
        #endif
    }

    /// The active level is `SOFTPROMPT_ISA` (when it names a level) clamped to the machine, else the
    /// machine's best; read from this process's environment, never set by a test. Prints the levels
    /// this run tests, so a CI log says which ISA ran.
    @Test func activeLevelIsTheEnvironmentsClampedToTheMachine() {
        let best = spk_detect_isa()
        let named = environmentValue("SOFTPROMPT_ISA").flatMap { ["scalar": SPK_ISA_SCALAR, "avx2": SPK_ISA_AVX2, "avx512": SPK_ISA_AVX512][$0] }
        let want = named.map { $0.rawValue < best.rawValue ? $0 : best } ?? best
        #expect(spk_active_isa() == want)
        #expect(spk_kernels_isa(spk_kernels_active()) == want)
        print("[kernels] \(KT.levelReport)")
    }

    /// Block sizes pinned against ggml-common.h (static_asserts on sizeof(block_*)).
    @Test func typeTableMatchesGGML() {
        let expected: [(Int32, Int32, Int)] = [
            (KT.f32, 1, 4), (KT.f16, 1, 2), (KT.bf16, 1, 2), (KT.q4_0, 32, 18), (KT.q4_1, 32, 20),
            (KT.q8_0, 32, 34), (KT.q8_1, 32, 36), (KT.q4_K, 256, 144), (KT.q6_K, 256, 210), (KT.q8_K, 256, 292),
        ]
        for (t, bs, bytes) in expected {
            #expect(spk_type_block_size(t) == bs, "type \(t)")
            #expect(spk_type_block_bytes(t) == bytes, "type \(t)")
        }
        #expect(spk_row_bytes(KT.q4_1, 576) == 360)
        #expect(spk_row_bytes(KT.q4_1, 33) == 0)
        #expect(spk_row_bytes(99, 32) == 0)
        #expect(spk_row_bytes(KT.q8_K, 1 << 62) == (1 << 54) * 292)  // large, still fits in size_t
        #expect(spk_row_bytes(KT.f32, (1 << 62) + 1) == 0)  // 2^64 + 4 bytes: refused, not wrapped to 4
        #expect(spk_row_bytes(KT.q4_0, -32) == 0)
        #expect(spk_vec_dot_type(KT.q4_1) == KT.q8_0)
        #expect(spk_vec_dot_type(KT.q6_K) == KT.q8_K)
        #expect(spk_vec_dot_type(KT.f16) == -1)
    }

    @Test func rejectsBadArguments() {
        var rng = SplitMix64(seed: 1)
        let w = KT.randomWeights(KT.q4_1, rows: 4, k: 64, rng: &rng)
        let x = [Float](repeating: 1, count: 64)
        var y = [Float](repeating: 0, count: 4)
        let einval = Int32(SPK_EINVAL), etype = Int32(SPK_ETYPE)
        w.withUnsafeBytes { wp in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    let W = wp.baseAddress, X = xp.baseAddress, Y = yp.baseAddress
                    #expect(spk_matmul_f32(nil, KT.q4_1, W, 40, 0, 4, 48, X, 1, 64, Y, 4) == einval)  // K % 32
                    #expect(spk_matmul_f32(nil, KT.q4_1, W, 39, 0, 4, 64, X, 1, 64, Y, 4) == einval)  // row bytes
                    #expect(spk_matmul_f32(nil, KT.q4_1, W, 40, 3, 2, 64, X, 1, 64, Y, 4) == einval)  // range
                    #expect(spk_matmul_f32(nil, KT.q4_1, W, 40, 0, 4, 64, X, 1, 63, Y, 4) == einval)  // ldx
                    #expect(spk_matmul_f32(nil, KT.q4_1, W, 40, 0, 4, 64, X, 1, 64, Y, 3) == einval)  // ldy
                    #expect(spk_matmul_f32(nil, 99, W, 40, 0, 4, 64, X, 1, 64, Y, 4) == etype)
                    #expect(spk_matmul_f32(nil, KT.q4_K, W, 40, 0, 4, 64, X, 1, 64, Y, 4) == einval)  // K % 256
                    #expect(spk_matmul_q8(nil, KT.f16, W, 128, 0, 4, 64, W, 68, 1, Y, 4) == etype)
                    #expect(spk_matmul_q8(nil, KT.q4_1, W, 40, 0, 4, 64, W, 67, 1, Y, 4) == einval)  // xq rows
                    #expect(spk_matmul_t_f32(nil, KT.q4_1, W, 40, 4, 64, X, 1, 4, Y, 64, 16, 64) == einval)  // k_begin
                    #expect(spk_matmul_t_f32(nil, KT.q4_1, W, 40, 4, 64, X, 1, 4, Y, 64, 0, 65) == einval)  // k_end
                    #expect(spk_matmul_f32(nil, KT.q4_1, W, 40, 2, 2, 64, X, 1, 64, Y, 4) == 0)  // empty range
                }
            }
        }
        #expect(spk_quantize_row_q8_0(x, &y, 48) == einval)
    }
}

/// Against the independent oracle: gguf-py (dequantization, Q8_0 quantization) and numpy in float64
/// (Tools/scripts/gen_kernel_fixtures.py). Weight decoding is also held to the project's one reference
/// dequantizer, `Quantization.dequantize` (Sources/Quants), which must itself match gguf-py.
@Suite struct OracleTests {
    struct Case {
        var name: String, type: Int32, n: Int, k: Int, m: Int
        var w: [UInt8], wdeq: [Float], x: [Float]
    }

    func load(_ name: String, _ type: Int32) throws -> Case {
        let w = try KT.fixture("\(name)_w"), wdeq = try KT.fixture("\(name)_wdeq"), x = try KT.fixture("\(name)_x")
        return Case(name: name, type: type, n: wdeq.shape[0], k: wdeq.shape[1], m: x.shape[0], w: w.data,
                    wdeq: KT.floats(wdeq), x: KT.floats(x))
    }

    /// Σ_k |x[m,k] · w[n,k]| in float64: the scale of the rounding error of one output.
    func absTerms(_ c: Case, _ x: [Float]) -> [Double] {
        var out = [Double](repeating: 0, count: c.m * c.n)
        for m in 0 ..< c.m {
            for n in 0 ..< c.n {
                var s = 0.0
                for k in 0 ..< c.k { s += abs(Double(x[m * c.k + k]) * Double(c.wdeq[n * c.k + k])) }
                out[m * c.n + n] = s
            }
        }
        return out
    }

    /// The reference dequantizer reproduces gguf-py bit for bit, and every kernel set decodes the
    /// weights inside its matmul to exactly the reference's values.
    @Test func weightDecodingMatchesGGUFPyAndTheReference() throws {
        for (name, type) in KT.weightTypes {
            let c = try load(name, type)
            #expect(c.w.count == KT.rowBytes(type, c.k) * c.n, "\(name)")
            let reference = try KT.referenceDequantized(type, c.w, count: c.n * c.k)
            #expect(KT.firstDifference(KT.bits(reference), KT.bits(c.wdeq)) == nil, "\(name): Quantization.dequantize vs gguf-py")
            for s in KT.kernelSets {
                let decoded = KT.decodedByMatmul(s.kern, type, c.w, n: c.n, k: c.k)
                #expect(KT.firstDifference(decoded, reference) == nil, "\(name) \(s.name): matmul weights vs the reference")
            }
        }
    }

    @Test func exactMatmulMatchesNumpy() throws {
        for (name, type) in KT.weightTypes {
            let c = try load(name, type)
            let want = KT.doubles(try KT.fixture("\(name)_y"))
            let scale = absTerms(c, c.x)
            for s in KT.kernelSets {
                var y = [Float](repeating: .nan, count: c.m * c.n)
                #expect(KT.matmul(s.kern, type, c.w, n: c.n, k: c.k, c.x, m: c.m, into: &y) == 0)
                for i in y.indices {
                    #expect(abs(Double(y[i]) - want[i]) <= 1e-5 * scale[i] + 1e-30, "\(name) \(s.name) [\(i)]")
                }
            }
        }
    }

    @Test func transposedMatmulMatchesNumpy() throws {
        for (name, type) in KT.weightTypes {
            let c = try load(name, type)
            let dy = KT.floats(try KT.fixture("\(name)_dy"))
            let want = KT.doubles(try KT.fixture("\(name)_dx"))
            for s in KT.kernelSets {
                var dx = [Float](repeating: 0.5, count: c.m * c.k)  // accumulates onto what is there
                #expect(KT.matmulT(s.kern, type, c.w, n: c.n, k: c.k, dy, m: c.m, into: &dx) == 0)
                for m in 0 ..< c.m {
                    for k in 0 ..< c.k {
                        var scale = 0.5
                        for n in 0 ..< c.n { scale += abs(Double(dy[m * c.n + n]) * Double(c.wdeq[n * c.k + k])) }
                        let i = m * c.k + k
                        #expect(abs(Double(dx[i]) - (0.5 + want[i])) <= 1e-5 * scale, "\(name) \(s.name) [\(m),\(k)]")
                    }
                }
            }
        }
    }

    @Test func int8MatmulMatchesNumpy() throws {
        for (name, type) in KT.int8Types {
            let c = try load(name, type)
            let xqFixture = try KT.fixture("\(name)_xq")
            let (xq, xqRB) = KT.quantize(c.x, m: c.m, k: c.k, for: type)
            #expect(xq == xqFixture.data, "\(name): activation quantization differs from ggml's reference")
            // The float values the int8 path multiplies: dequantized activations.
            var xdeq = [Float](repeating: 0, count: c.m * c.k)
            var dxHalf = [Double](repeating: 0, count: c.m * c.k)  // half the activation step, per element
            for m in 0 ..< c.m {
                for k in 0 ..< c.k {
                    let row = m * xqRB
                    if spk_vec_dot_type(type) == KT.q8_0 {
                        let b = row + (k / 32) * 34
                        let d = HalfFloat.f16ToFloat(UInt16(xq[b]) | UInt16(xq[b + 1]) << 8)
                        xdeq[m * c.k + k] = d * Float(Int8(bitPattern: xq[b + 2 + k % 32]))
                        dxHalf[m * c.k + k] = Double(abs(d)) / 2
                    } else {
                        let b = row + (k / 256) * 292
                        let d = Float(bitPattern: UInt32(xq[b]) | UInt32(xq[b + 1]) << 8 | UInt32(xq[b + 2]) << 16 | UInt32(xq[b + 3]) << 24)
                        xdeq[m * c.k + k] = d * Float(Int8(bitPattern: xq[b + 4 + k % 256]))
                        dxHalf[m * c.k + k] = Double(abs(d)) / 2
                    }
                }
            }
            let want = KT.doubles(try KT.fixture("\(name)_yq"))
            let exact = KT.doubles(try KT.fixture("\(name)_y"))
            let scale = absTerms(c, xdeq)
            for s in KT.kernelSets {
                var y = [Float](repeating: .nan, count: c.m * c.n)
                #expect(KT.matmulQ8(s.kern, type, c.w, n: c.n, k: c.k, xq, xqRowBytes: xqRB, m: c.m, into: &y) == 0)
                for m in 0 ..< c.m {
                    for n in 0 ..< c.n {
                        let i = m * c.n + n
                        #expect(abs(Double(y[i]) - want[i]) <= 1e-5 * scale[i] + 1e-30, "\(name) \(s.name) [\(m),\(n)]")
                        // And against the exact product: at most half an activation step per weight.
                        var bound = 1e-5 * scale[i]
                        for k in 0 ..< c.k { bound += abs(Double(c.wdeq[n * c.k + k])) * dxHalf[m * c.k + k] * 1.0001 }
                        #expect(abs(Double(y[i]) - exact[i]) <= bound + 1e-30, "\(name) \(s.name) [\(m),\(n)] vs exact")
                    }
                }
            }
        }
    }

    @Test func activationQuantizersMatchGGMLReference() throws {
        let x = KT.floats(try KT.fixture("act_x")), xk = KT.floats(try KT.fixture("act_xk"))
        let rows = 5, k = 512
        for (fixture, type, input) in [("act_q8_0", KT.q8_0, x), ("act_q8_1", KT.q8_1, x), ("act_q8_K", KT.q8_K, xk)] {
            let want = try KT.fixture(fixture)
            let rb = KT.rowBytes(type, k)
            for s in KT.kernelSets {
                var out = [UInt8](repeating: 0xAA, count: rows * rb)
                let rc = input.withUnsafeBufferPointer { xp in
                    out.withUnsafeMutableBytes { spk_quantize_rows(s.kern, type, xp.baseAddress, Int32(rows), Int32(k), Int32(k), $0.baseAddress, rb) }
                }
                #expect(rc == 0)
                #expect(KT.firstDifference(out, want.data) == nil, "\(fixture) \(s.name)")
            }
            // The single-row entry points are the reference itself.
            var one = [UInt8](repeating: 0, count: rb)
            let rc = Array(input[0 ..< k]).withUnsafeBufferPointer { xp in
                one.withUnsafeMutableBytes { op in
                    type == KT.q8_0 ? spk_quantize_row_q8_0(xp.baseAddress, op.baseAddress, Int64(k))
                        : type == KT.q8_1 ? spk_quantize_row_q8_1(xp.baseAddress, op.baseAddress, Int64(k))
                        : spk_quantize_row_q8_K(xp.baseAddress, op.baseAddress, Int64(k))
                }
            }
            #expect(rc == 0)
            #expect(one == Array(want.data[0 ..< rb]), "\(fixture) single row")
        }
    }
}

/// One SIMD level against the scalar reference: the matmul contracts are bit for bit. Every call names
/// its kernel set, so levels run side by side in one process and no process-wide state is touched.
struct CrossLevel {
    /// The kernel sets of `level` on this machine (AVX2: the maddubs set, and the AVX-VNNI one when present).
    let sets: [(name: String, kern: OpaquePointer)]

    /// - Parameter level: "scalar", "avx2" (both AVX2 sets) or "avx512".
    init(_ level: String) { sets = KT.kernelSets.filter { KT.level(named: $0.name) == KT.level(named: level) } }

    func shapes(_ type: Int32) -> (n: Int, k: Int) { KT.isKQuant(type) ? (21, 768) : (37, 608) }

    func weightDecodingMatchesTheReference() throws {
        #expect(!sets.isEmpty, "no kernel set at this level")
        var rng = SplitMix64(seed: 41)
        for (name, type) in KT.weightTypes {
            let (n, k) = shapes(type)
            let w = KT.randomWeights(type, rows: n, k: k, rng: &rng)
            let reference = try KT.referenceDequantized(type, w, count: n * k)
            for s in sets { #expect(KT.firstDifference(KT.decodedByMatmul(s.kern, type, w, n: n, k: k), reference) == nil, "\(name) \(s.name)") }
        }
    }

    func exactMatmulIsIdentical() {
        #expect(!sets.isEmpty, "no kernel set at this level")
        var rng = SplitMix64(seed: 42)
        for (name, type) in KT.weightTypes {
            let (n, k) = shapes(type)
            let w = KT.randomWeights(type, rows: n, k: k, rng: &rng)
            for m in [1, 5, 13] {
                let x = KT.randomFloats(m * k, rng: &rng)
                var ref = [Float](repeating: -7, count: m * n)
                #expect(KT.matmul(KT.scalar, type, w, rows: 3 ... n - 1, n: n, k: k, x, m: m, into: &ref) == 0)
                for s in sets {
                    var y = [Float](repeating: -7, count: m * n)
                    #expect(KT.matmul(s.kern, type, w, rows: 3 ... n - 1, n: n, k: k, x, m: m, into: &y) == 0)
                    #expect(KT.firstDifference(KT.bits(y), KT.bits(ref)) == nil, "\(name) \(s.name) M=\(m)")
                }
                #expect(ref[0] == -7 && ref[2] == -7, "rows outside the range are untouched")
            }
        }
    }

    func transposedMatmulIsIdentical() {
        #expect(!sets.isEmpty, "no kernel set at this level")
        var rng = SplitMix64(seed: 43)
        for (name, type) in KT.weightTypes {
            let (n, k) = shapes(type)
            let unit = KT.isKQuant(type) ? 256 : 32
            let w = KT.randomWeights(type, rows: n, k: k, rng: &rng)
            let m = 7
            let dy = KT.randomFloats(m * n, rng: &rng)
            let dx0 = KT.randomFloats(m * k, rng: &rng)
            var ref = dx0
            #expect(KT.matmulT(KT.scalar, type, w, n: n, k: k, dy, m: m, into: &ref) == 0)
            for s in sets {
                var dx = dx0  // two column ranges, as two threads would do
                #expect(KT.matmulT(s.kern, type, w, n: n, k: k, dy, m: m, into: &dx, columns: 0 ..< unit) == 0)
                #expect(KT.matmulT(s.kern, type, w, n: n, k: k, dy, m: m, into: &dx, columns: unit ..< k) == 0)
                #expect(KT.firstDifference(KT.bits(dx), KT.bits(ref)) == nil, "\(name) \(s.name)")
            }
        }
    }

    func int8MatmulIsIdentical() {
        #expect(!sets.isEmpty, "no kernel set at this level")
        var rng = SplitMix64(seed: 44)
        for (name, type) in KT.int8Types {
            let (n, k) = shapes(type)
            let w = KT.randomWeights(type, rows: n, k: k, rng: &rng)
            for m in [1, 11] {
                let x = KT.randomFloats(m * k, rng: &rng)
                let (xq, rb) = KT.quantize(x, m: m, k: k, for: type)
                var ref = [Float](repeating: -7, count: m * n)
                #expect(KT.matmulQ8(KT.scalar, type, w, rows: 3 ... n - 1, n: n, k: k, xq, xqRowBytes: rb, m: m, into: &ref) == 0)
                for s in sets {
                    var y = [Float](repeating: -7, count: m * n)
                    #expect(KT.matmulQ8(s.kern, type, w, rows: 3 ... n - 1, n: n, k: k, xq, xqRowBytes: rb, m: m, into: &y) == 0)
                    #expect(KT.firstDifference(KT.bits(y), KT.bits(ref)) == nil, "\(name) \(s.name) M=\(m)")
                }
            }
        }
    }

    func activationQuantizersAreIdentical() {
        #expect(!sets.isEmpty, "no kernel set at this level")
        var rng = SplitMix64(seed: 46)
        let (m, k) = (6, 1024)
        var x = KT.randomFloats(m * k, rng: &rng, scale: 3)
        for i in 0 ..< 64 { x[i] = Float(i % 32) - 15.5 }  // exact halves after scaling by 1
        x[0] = 127
        for i in 256 ..< 512 { x[i] = Float(i % 32) - 15.5 }
        x[300] = -127
        for i in 512 ..< 768 { x[i] = 0 }  // zero super-block
        for i in 1024 ..< 2048 { x[i] *= 1e-30 }  // tiny scales
        for type in [KT.q8_0, KT.q8_K] {
            let rb = KT.rowBytes(type, k)
            func run(_ kern: OpaquePointer) -> [UInt8] {
                var out = [UInt8](repeating: 0xAA, count: m * rb)
                _ = x.withUnsafeBufferPointer { xp in
                    out.withUnsafeMutableBytes { spk_quantize_rows(kern, type, xp.baseAddress, Int32(m), Int32(k), Int32(k), $0.baseAddress, rb) }
                }
                return out
            }
            let ref = run(KT.scalar)
            for s in sets { #expect(KT.firstDifference(run(s.kern), ref) == nil, "type \(type) \(s.name)") }
        }
    }

    /// A row's result does not depend on the batch it is computed in, nor on how rows are split.
    func resultsDoNotDependOnBatchOrSplit() {
        #expect(!sets.isEmpty, "no kernel set at this level")
        var rng = SplitMix64(seed: 45)
        let (n, k, m) = (40, 576, 9)
        let w = KT.randomWeights(KT.q4_1, rows: n, k: k, rng: &rng)
        let x = KT.randomFloats(m * k, rng: &rng)
        for (name, kern) in sets {
            var all = [Float](repeating: 0, count: m * n)
            #expect(KT.matmul(kern, KT.q4_1, w, n: n, k: k, x, m: m, into: &all) == 0)
            var split = [Float](repeating: 0, count: m * n)
            #expect(KT.matmul(kern, KT.q4_1, w, rows: 0 ... 16, n: n, k: k, x, m: m, into: &split) == 0)
            #expect(KT.matmul(kern, KT.q4_1, w, rows: 17 ... 39, n: n, k: k, x, m: m, into: &split) == 0)
            #expect(KT.firstDifference(KT.bits(split), KT.bits(all)) == nil, "\(name)")
            for row in [0, 5, 8] {
                var one = [Float](repeating: 0, count: n)
                #expect(KT.matmul(kern, KT.q4_1, w, n: n, k: k, Array(x[row * k ..< (row + 1) * k]), m: 1, into: &one) == 0)
                #expect(KT.firstDifference(KT.bits(one), KT.bits(Array(all[row * n ..< (row + 1) * n]))) == nil, "\(name) row \(row)")
            }
        }
    }
}

/// Each SIMD level this CPU has, against the scalar reference, one test case per level; a level the
/// CPU lacks has no case, and its `…IsTested` check below is skipped with the reason.
@Suite struct LevelTests {
    @Test(arguments: KT.simdLevels) func weightDecodingMatchesTheReference(level: String) throws {
        try CrossLevel(level).weightDecodingMatchesTheReference()
    }
    @Test(arguments: KT.simdLevels) func exactMatmulIsIdentical(level: String) { CrossLevel(level).exactMatmulIsIdentical() }
    @Test(arguments: KT.simdLevels) func transposedMatmulIsIdentical(level: String) { CrossLevel(level).transposedMatmulIsIdentical() }
    @Test(arguments: KT.simdLevels) func int8MatmulIsIdentical(level: String) { CrossLevel(level).int8MatmulIsIdentical() }
    @Test(arguments: KT.simdLevels) func activationQuantizersAreIdentical(level: String) {
        CrossLevel(level).activationQuantizersAreIdentical()
    }
    @Test(arguments: ["scalar"] + KT.simdLevels) func resultsDoNotDependOnBatchOrSplit(level: String) {
        CrossLevel(level).resultsDoNotDependOnBatchOrSplit()
    }

    @Test(.enabled(if: KT.has(SPK_ISA_AVX2), "this CPU lacks AVX2 + FMA + F16C: the AVX2 kernels are not tested"))
    func avx2IsTested() { #expect(KT.simdLevels.first == "avx2") }

    @Test(.enabled(if: spk_has_avx_vnni() != 0, "this CPU lacks AVX-VNNI: the avx2-vnni int8 kernel is not tested"))
    func avx2VNNIIsTested() { #expect(CrossLevel("avx2").sets.map(\.name) == ["avx2", "avx2-vnni"]) }

    @Test(.enabled(if: KT.has(SPK_ISA_AVX512), "this CPU lacks AVX-512 F/BW/VL/VNNI: the AVX-512 kernels are not tested"))
    func avx512IsTested() { #expect(KT.simdLevels.last == "avx512") }
}

/// The intended use: threads (here tasks) computing disjoint row ranges of one product at once.
@Suite struct ConcurrencyTests {
    @Test func concurrentRowRangesMatchOneCall() async {
        var rng = SplitMix64(seed: 47)
        let (n, k, m) = (96, 576, 6)
        let w = KT.randomWeights(KT.q4_1, rows: n, k: k, rng: &rng)
        let x = KT.randomFloats(m * k, rng: &rng)
        let (xq, rb) = KT.quantize(x, m: m, k: k, for: KT.q4_1)
        var want = [Float](repeating: 0, count: m * n), wantQ = want
        #expect(KT.matmul(KT.scalar, KT.q4_1, w, n: n, k: k, x, m: m, into: &want) == 0)
        #expect(KT.matmulQ8(KT.scalar, KT.q4_1, w, n: n, k: k, xq, xqRowBytes: rb, m: m, into: &wantQ) == 0)
        let parts = await withTaskGroup(of: (Int, [Float], [Float]).self) { group in
            for part in 0 ..< 6 {
                group.addTask {
                    let rows = part * 16 ... part * 16 + 15
                    var y = [Float](repeating: 0, count: m * n), yq = y
                    _ = KT.matmul(spk_kernels_active()!, KT.q4_1, w, rows: rows, n: n, k: k, x, m: m, into: &y)
                    _ = KT.matmulQ8(spk_kernels_active()!, KT.q4_1, w, rows: rows, n: n, k: k, xq, xqRowBytes: rb, m: m, into: &yq)
                    return (part, y, yq)
                }
            }
            var out: [(Int, [Float], [Float])] = []
            for await r in group { out.append(r) }
            return out
        }
        var y = [Float](repeating: 0, count: m * n), yq = y
        for (part, py, pq) in parts {
            for row in 0 ..< m {
                for c in part * 16 ..< part * 16 + 16 {
                    y[row * n + c] = py[row * n + c]
                    yq[row * n + c] = pq[row * n + c]
                }
            }
        }
        #expect(KT.firstDifference(KT.bits(y), KT.bits(want)) == nil)
        #expect(KT.firstDifference(KT.bits(yq), KT.bits(wantQ)) == nil)
    }
}
