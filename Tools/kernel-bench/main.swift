// kernel-bench: GFLOP/s of the CKernels matmuls on the SmolLM2-135M shapes, per kernel set, plus a plain
// Swift SIMD16 implementation of the exact Q4_1 path for comparison. Build and run in release:
//
//   swift run -c release kernel-bench [--quick]
//   kernel-bench --isa     prints the detected instruction-set level and the kernel sets, then exits
//
// Each figure is the best of several calls, each timed in CPU time of the calling thread (so a shared,
// busy machine does not count time spent descheduled), in GFLOP/s = 2·M·N·K / time. Timings are
// measurements, not tests: nothing here asserts a speed.

#if canImport(Glibc)
import Glibc
#endif
import CKernels

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func cpuNow() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// Best time of one call of `body`, over at least `minReps` calls and about `budget` seconds.
func bestTime(budget: Double, minReps: Int = 3, _ body: () -> Void) -> Double {
    var best = Double.infinity
    let start = now()
    var reps = 0
    while reps < minReps || now() - start < budget {
        let t0 = cpuNow()
        body()
        best = min(best, cpuNow() - t0)
        reps += 1
    }
    return best
}

struct Rng {
    var s: UInt64 = 0x1234_5678_9ABC_DEF1
    mutating func next() -> UInt64 {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17
        return s
    }
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
}

/// Random Q4_1 rows with finite scales.
func randomQ4_1(rows: Int, k: Int, rng: inout Rng) -> [UInt8] {
    let rb = spk_row_bytes(Int32(SPK_TYPE_Q4_1), Int64(k))
    var w = (0 ..< rows * rb).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    for r in 0 ..< rows {
        for b in 0 ..< k / 32 {
            let at = r * rb + b * 20
            let d = Float16(rng.float() * 0.01).bitPattern, m = Float16(rng.float() * 0.05).bitPattern
            w[at] = UInt8(d & 0xFF); w[at + 1] = UInt8(d >> 8)
            w[at + 2] = UInt8(m & 0xFF); w[at + 3] = UInt8(m >> 8)
        }
    }
    return w
}

// MARK: - Plain Swift SIMD16 exact Q4_1 path (for comparison)

/// Y[m, n] = Σ_k X[m, k]·W[n, k] with W in Q4_1: four weight rows dequantized (exactly as ggml) into
/// SIMD16 vectors, then reused across every X row with four SIMD16 fma accumulators.
/// `fused` uses addProduct (one rounding, like the C contract; without FMA in the baseline x86-64 target
/// Swift lowers it to a libm call per lane); otherwise `acc += x * w` (two roundings, SSE mul + add).
func swiftQ4_1Matmul(_ w: UnsafeRawBufferPointer, n: Int, k: Int, x: UnsafePointer<Float>, m: Int,
                     y: UnsafeMutablePointer<Float>, fused: Bool) {
    let rb = k / 32 * 20
    let vk = k / 16
    var panel = [SIMD16<Float>](repeating: .zero, count: 4 * vk)
    panel.withUnsafeMutableBufferPointer { p in
        var n0 = 0
        while n0 < n {
            let nr = min(4, n - n0)
            for r in 0 ..< 4 {
                for b in 0 ..< k / 32 {
                    guard r < nr else { p[r * vk + 2 * b] = .zero; p[r * vk + 2 * b + 1] = .zero; continue }
                    let at = (n0 + r) * rb + b * 20
                    let d = Float(Float16(bitPattern: w.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                    let mn = Float(Float16(bitPattern: w.loadUnaligned(fromByteOffset: at + 2, as: UInt16.self)))
                    let qs = w.loadUnaligned(fromByteOffset: at + 4, as: SIMD16<UInt8>.self)
                    let lo = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs & 0x0F))
                    let hi = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs &>> 4))
                    p[r * vk + 2 * b] = lo * d + mn
                    p[r * vk + 2 * b + 1] = hi * d + mn
                }
            }
            for row in 0 ..< m {
                let xr = UnsafeRawPointer(x + row * k)
                var a0 = SIMD16<Float>.zero, a1 = a0, a2 = a0, a3 = a0
                if fused {
                    for v in 0 ..< vk {
                        let xv = xr.loadUnaligned(fromByteOffset: v * 64, as: SIMD16<Float>.self)
                        a0.addProduct(xv, p[v])
                        a1.addProduct(xv, p[vk + v])
                        a2.addProduct(xv, p[2 * vk + v])
                        a3.addProduct(xv, p[3 * vk + v])
                    }
                } else {
                    for v in 0 ..< vk {
                        let xv = xr.loadUnaligned(fromByteOffset: v * 64, as: SIMD16<Float>.self)
                        a0 += xv * p[v]
                        a1 += xv * p[vk + v]
                        a2 += xv * p[2 * vk + v]
                        a3 += xv * p[3 * vk + v]
                    }
                }
                let out = y + row * n + n0
                out[0] = a0.sum()
                if nr > 1 { out[1] = a1.sum() }
                if nr > 2 { out[2] = a2.sum() }
                if nr > 3 { out[3] = a3.sum() }
            }
            n0 += 4
        }
    }
}

// MARK: - Driver

let quick = CommandLine.arguments.contains("--quick")
let budget = quick ? 0.05 : 0.4
var count: Int32 = 0
let setsPtr = spk_kernels_all(&count)!
let sets = (0 ..< Int(count)).map { setsPtr[$0]! }
func name(_ k: OpaquePointer) -> String { String(cString: spk_kernels_name(k)) }

if CommandLine.arguments.contains("--isa") {
    print("ISA level: \(String(cString: spk_isa_name(spk_detect_isa()))) detected, \(name(spk_kernels_active()))"
        + " active (SOFTPROMPT_ISA=\(getenv("SOFTPROMPT_ISA").map { String(cString: $0) } ?? "unset")); AVX-VNNI "
        + (spk_has_avx_vnni() != 0 ? "yes" : "no") + "; kernel sets: \(sets.map(name).joined(separator: ", "))")
    exit(0)
}

print("kernel-bench: best-of timings (thread CPU time), GFLOP/s = 2·M·N·K / time; detected level \(String(cString: spk_isa_name(spk_detect_isa())))")
print("shape (N×K)   M    set        exact   int8(+quant)  int8-only  transposed   | quant ms")

let q4_1 = Int32(SPK_TYPE_Q4_1), q8_0 = Int32(SPK_TYPE_Q8_0)
var rng = Rng()
var swiftRows: [(String, Double, Double, Double)] = []
for (n, k) in [(576, 576), (1536, 576), (576, 1536)] {
    let w = randomQ4_1(rows: n, k: k, rng: &rng)
    let rb = spk_row_bytes(q4_1, Int64(k))
    for m in [1, 512] {
        let x = (0 ..< m * k).map { _ in rng.float() }
        var y = [Float](repeating: 0, count: m * n)
        var dx = [Float](repeating: 0, count: m * k)
        let dy = (0 ..< m * n).map { _ in rng.float() }
        let xrb = spk_row_bytes(q8_0, Int64(k))
        var xq = [UInt8](repeating: 0, count: m * xrb)
        let flops = 2.0 * Double(m * n * k)
        for kern in sets {
            let scalar = spk_kernels_isa(kern) == SPK_ISA_SCALAR
            let b = scalar && m > 1 ? 0.0 : budget
            let reps = scalar && m > 1 ? 1 : 3
            let tExact = bestTime(budget: b, minReps: reps) {
                _ = spk_matmul_f32(kern, q4_1, w, rb, 0, Int32(n), Int32(k), x, Int32(m), Int32(k), &y, Int32(n))
            }
            let tQuant = bestTime(budget: b, minReps: reps) {
                _ = spk_quantize_rows(kern, q8_0, x, Int32(m), Int32(k), Int32(k), &xq, xrb)
            }
            let tInt8 = bestTime(budget: b, minReps: reps) {
                _ = spk_matmul_q8(kern, q4_1, w, rb, 0, Int32(n), Int32(k), xq, xrb, Int32(m), &y, Int32(n))
            }
            let tT = bestTime(budget: b, minReps: reps) {
                _ = spk_matmul_t_f32(kern, q4_1, w, rb, Int32(n), Int32(k), dy, Int32(m), Int32(n), &dx, Int32(k), 0, Int32(k))
            }
            func g(_ t: Double) -> String { String(Int((flops / t / 1e9 * 10).rounded()) / 10) + "." + String(Int((flops / t / 1e9 * 10).rounded()) % 10) }
            let shape = "\(n)×\(k)".padding(12)
            print("\(shape) \(String(m).padding(4)) \(name(kern).padding(10)) \(g(tExact).padding(7)) \(g(tInt8 + tQuant).padding(13)) \(g(tInt8).padding(10)) \(g(tT).padding(12)) | \(String(format3(tQuant * 1e3)))")
        }
        func swiftTime(fused: Bool) -> Double {
            w.withUnsafeBytes { wp in
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { yp in
                        bestTime(budget: budget, minReps: m > 1 ? 2 : 3) {
                            swiftQ4_1Matmul(wp, n: n, k: k, x: xp.baseAddress!, m: m, y: yp.baseAddress!, fused: fused)
                        }
                    }
                }
            }
        }
        let tSwiftFused = swiftTime(fused: true), tSwift = swiftTime(fused: false)
        let tC = bestTime(budget: budget) {
            _ = spk_matmul_f32(nil, q4_1, w, rb, 0, Int32(n), Int32(k), x, Int32(m), Int32(k), &y, Int32(n))
        }
        swiftRows.append(("\(n)×\(k) M=\(m)", flops / tSwiftFused / 1e9, flops / tSwift / 1e9, flops / tC / 1e9))
    }
}
print("\nexact Q4_1 path: plain Swift SIMD16 vs C (active set \(name(spk_kernels_active()!))), GFLOP/s")
print("(swift-fma: addProduct, same rounding as C; swift-mul+add: acc += x*w, the fastest plain Swift form)")
for (label, sf, s, c) in swiftRows {
    print("\(label.padding(18)) swift-fma \(format3(sf).padding(7)) swift-mul+add \(format3(s).padding(7)) C \(format3(c).padding(8)) C/swift-mul+add \(format3(c / s))")
}

func format3(_ v: Double) -> String {
    let r = (v * 100).rounded() / 100
    return "\(r)"
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}
