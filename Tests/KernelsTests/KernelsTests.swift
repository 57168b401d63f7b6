#if canImport(Glibc)
import Glibc
#endif
import CKernels
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
        #if arch(x86_64)
        // The CI machines are AVX-512 capable; a plain x86-64 still gets the AVX2 or scalar level.
        #expect(sets.count >= 1)
        #else
        #expect(best == SPK_ISA_SCALAR)
        #endif
    }

    @Test func setIsaClampsAndRestores() {
        let before = spk_active_isa()
        #expect(spk_set_isa(SPK_ISA_SCALAR) == SPK_ISA_SCALAR)
        #expect(spk_active_isa() == SPK_ISA_SCALAR)
        #expect(spk_set_isa(spk_isa(rawValue: 7)) == spk_detect_isa())
        #expect(spk_set_isa(before) == before)
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
        #expect(spk_row_bytes(KT.q8_K, 1 << 62) == 0 || spk_row_bytes(KT.q8_K, 1 << 62) > 0)  // no trap
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
        #expect(spk_dequantize_row(KT.q4_1, w, &y, 33) == einval)
    }
}

/// Against the independent oracle: gguf-py (dequantization, Q8_0 quantization) and numpy in float64
/// (Tools/scripts/gen_kernel_fixtures.py).
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

    @Test func dequantizationMatchesGGUFPy() throws {
        for (name, type) in KT.weightTypes {
            let c = try load(name, type)
            let rb = KT.rowBytes(type, c.k)
            #expect(c.w.count == rb * c.n, "\(name)")
            var row = [Float](repeating: 0, count: c.k)
            for n in 0 ..< c.n {
                let rc = Array(c.w[n * rb ..< (n + 1) * rb]).withUnsafeBytes { spk_dequantize_row(type, $0.baseAddress, &row, Int64(c.k)) }
                #expect(rc == 0)
                #expect(KT.firstDifference(KT.bits(row), KT.bits(Array(c.wdeq[n * c.k ..< (n + 1) * c.k]))) == nil, "\(name) row \(n)")
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

/// Every SIMD level against the scalar reference: the matmul contracts are bit for bit.
@Suite struct CrossLevelTests {
    func shapes(_ type: Int32) -> (n: Int, k: Int) { KT.isKQuant(type) ? (21, 768) : (37, 608) }

    @Test func exactMatmulIsIdenticalOnEveryLevel() {
        var rng = SplitMix64(seed: 42)
        for (name, type) in KT.weightTypes {
            let (n, k) = shapes(type)
            let w = KT.randomWeights(type, rows: n, k: k, rng: &rng)
            for m in [1, 5, 13] {
                let x = KT.randomFloats(m * k, rng: &rng)
                var ref = [Float](repeating: -7, count: m * n)
                #expect(KT.matmul(KT.scalar, type, w, rows: 3 ... n - 1, n: n, k: k, x, m: m, into: &ref) == 0)
                for s in KT.kernelSets.dropFirst() {
                    var y = [Float](repeating: -7, count: m * n)
                    #expect(KT.matmul(s.kern, type, w, rows: 3 ... n - 1, n: n, k: k, x, m: m, into: &y) == 0)
                    #expect(KT.firstDifference(KT.bits(y), KT.bits(ref)) == nil, "\(name) \(s.name) M=\(m)")
                }
                #expect(ref[0] == -7 && ref[2] == -7, "rows outside the range are untouched")
            }
        }
    }

    @Test func transposedMatmulIsIdenticalOnEveryLevel() {
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
            for s in KT.kernelSets.dropFirst() {
                var dx = dx0  // two column ranges, as two threads would do
                #expect(KT.matmulT(s.kern, type, w, n: n, k: k, dy, m: m, into: &dx, columns: 0 ..< unit) == 0)
                #expect(KT.matmulT(s.kern, type, w, n: n, k: k, dy, m: m, into: &dx, columns: unit ..< k) == 0)
                #expect(KT.firstDifference(KT.bits(dx), KT.bits(ref)) == nil, "\(name) \(s.name)")
            }
        }
    }

    @Test func int8MatmulIsIdenticalOnEveryLevel() {
        var rng = SplitMix64(seed: 44)
        for (name, type) in KT.int8Types {
            let (n, k) = shapes(type)
            let w = KT.randomWeights(type, rows: n, k: k, rng: &rng)
            for m in [1, 11] {
                let x = KT.randomFloats(m * k, rng: &rng)
                let (xq, rb) = KT.quantize(x, m: m, k: k, for: type)
                var ref = [Float](repeating: -7, count: m * n)
                #expect(KT.matmulQ8(KT.scalar, type, w, rows: 3 ... n - 1, n: n, k: k, xq, xqRowBytes: rb, m: m, into: &ref) == 0)
                for s in KT.kernelSets.dropFirst() {
                    var y = [Float](repeating: -7, count: m * n)
                    #expect(KT.matmulQ8(s.kern, type, w, rows: 3 ... n - 1, n: n, k: k, xq, xqRowBytes: rb, m: m, into: &y) == 0)
                    #expect(KT.firstDifference(KT.bits(y), KT.bits(ref)) == nil, "\(name) \(s.name) M=\(m)")
                }
            }
        }
    }

    @Test func activationQuantizersAreIdenticalOnEveryLevel() {
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
            for s in KT.kernelSets.dropFirst() { #expect(KT.firstDifference(run(s.kern), ref) == nil, "type \(type) \(s.name)") }
        }
    }

    /// A row's result does not depend on the batch it is computed in, nor on how rows are split.
    @Test func resultsDoNotDependOnBatchOrSplit() {
        var rng = SplitMix64(seed: 45)
        let (n, k, m) = (40, 576, 9)
        let w = KT.randomWeights(KT.q4_1, rows: n, k: k, rng: &rng)
        let x = KT.randomFloats(m * k, rng: &rng)
        let kern = spk_kernels_active()!
        var all = [Float](repeating: 0, count: m * n)
        #expect(KT.matmul(kern, KT.q4_1, w, n: n, k: k, x, m: m, into: &all) == 0)
        var split = [Float](repeating: 0, count: m * n)
        #expect(KT.matmul(kern, KT.q4_1, w, rows: 0 ... 16, n: n, k: k, x, m: m, into: &split) == 0)
        #expect(KT.matmul(kern, KT.q4_1, w, rows: 17 ... 39, n: n, k: k, x, m: m, into: &split) == 0)
        #expect(KT.firstDifference(KT.bits(split), KT.bits(all)) == nil)
        for row in [0, 5, 8] {
            var one = [Float](repeating: 0, count: n)
            #expect(KT.matmul(kern, KT.q4_1, w, n: n, k: k, Array(x[row * k ..< (row + 1) * k]), m: 1, into: &one) == 0)
            #expect(KT.firstDifference(KT.bits(one), KT.bits(Array(all[row * n ..< (row + 1) * n]))) == nil, "row \(row)")
        }
    }
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

@Suite struct HelperTests {
    @Test func halfConversionsAreExactOnEveryLevel() {
        let every = (0 ... 0xFFFF).map { UInt16($0) }
        var rng = SplitMix64(seed: 7)
        var floats: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 1e-8, -1e-8, 6.1e-5, 5.96e-8, 2.98e-8,
                               2.99e-8, .infinity, -.infinity, .nan, Float(bitPattern: 0x7F80_0001), 1 + 1.0 / 2048,
                               1 + 3.0 / 2048, 1 + 1.0 / 256, 1 + 3.0 / 256, 3.4e38, -Float.leastNormalMagnitude, Float.leastNonzeroMagnitude]
        floats += (0 ..< 2000).map { _ in Float(bitPattern: UInt32.random(in: 0 ... UInt32.max, using: &rng)) }
        let wantF16 = floats.map { HalfFloat.floatToF16($0) }
        let wantBF16 = floats.map { HalfFloat.floatToBF16($0) }
        for s in KT.kernelSets {
            var out = [Float](repeating: 0, count: every.count)
            spk_f16_to_f32_row(s.kern, every, &out, Int32(every.count))
            #expect(KT.firstDifference(KT.bits(out), every.map { HalfFloat.f16ToFloat($0).bitPattern }) == nil, "\(s.name) f16->f32")
            spk_bf16_to_f32_row(s.kern, every, &out, Int32(every.count))
            #expect(KT.firstDifference(KT.bits(out), every.map { HalfFloat.bf16ToFloat($0).bitPattern }) == nil, "\(s.name) bf16->f32")
            var h = [UInt16](repeating: 0, count: floats.count)
            spk_f32_to_f16_row(s.kern, floats, &h, Int32(floats.count))
            for i in floats.indices where !floats[i].isNaN { #expect(h[i] == wantF16[i], "\(s.name) f16 of \(floats[i])") }
            for i in floats.indices where floats[i].isNaN { #expect(h[i] & 0x7C00 == 0x7C00 && h[i] & 0x3FF != 0) }
            spk_f32_to_bf16_row(s.kern, floats, &h, Int32(floats.count))
            #expect(KT.firstDifference(h, wantBF16) == nil, "\(s.name) bf16")
        }
    }

    @Test func vectorHelpersAgreeWithDoubleOnEveryLevel() {
        var rng = SplitMix64(seed: 8)
        for n in [1, 7, 64, 577] {
            let a = KT.randomFloats(n, rng: &rng, scale: 4), b = KT.randomFloats(n, rng: &rng, scale: 4)
            let g = KT.randomFloats(n, rng: &rng, scale: 12)
            let sumAbs = zip(a, b).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
            let dotWant = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let ms = a.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)
            let mx = Double(a.max()!)
            let z = a.reduce(0.0) { $0 + exp(Double($1) - mx) }
            for s in KT.kernelSets {
                let d = spk_dot_f32(s.kern, a, b, Int32(n))
                #expect(abs(Double(d) - dotWant) <= 1e-5 * sumAbs, "\(s.name) dot n=\(n)")

                var y = b
                spk_axpy_f32(s.kern, Int32(n), 0.75, a, &y)
                #expect(KT.firstDifference(KT.bits(y), (0 ..< n).map { b[$0].addingProduct(0.75, a[$0]).bitPattern }) == nil, "\(s.name) axpy (one fma)")

                var r = [Float](repeating: 0, count: n)
                spk_rmsnorm_f32(s.kern, a, b, &r, Int32(n), 1e-5)
                for i in 0 ..< n {
                    let want = Double(a[i]) / (ms + 1e-5).squareRoot() * Double(b[i])
                    #expect(abs(Double(r[i]) - want) <= 1e-5 * abs(want) + 1e-7, "\(s.name) rmsnorm n=\(n)")
                }

                var p = a
                spk_softmax_f32(s.kern, &p, Int32(n))
                for i in 0 ..< n {
                    let want = exp(Double(a[i]) - mx) / z
                    #expect(abs(Double(p[i]) - want) <= 1e-5 * want + 1e-12, "\(s.name) softmax n=\(n)")
                }

                var o = [Float](repeating: 0, count: n)
                spk_silu_mul_f32(s.kern, g, b, &o, Int32(n))
                for i in 0 ..< n {
                    let gi = Double(g[i])
                    let want = gi / (1 + exp(-gi)) * Double(b[i])
                    #expect(abs(Double(o[i]) - want) <= 5e-6 * abs(want) + 1e-12, "\(s.name) silu n=\(n)")
                }
            }
        }
    }
}
