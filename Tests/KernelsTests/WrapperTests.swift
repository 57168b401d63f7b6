import TestSupport
import CKernels
import Kernels
import Quants
import TensorIO
import Testing

@Suite struct WrapperTests {
    @Test func kernelSetsMirrorTheCLevels() {
        let all = KernelSet.all
        #expect(all.first?.name == "scalar")
        #expect(all.allSatisfy { $0.level <= KernelSet.detectedLevel })
        #expect(KernelSet.level(.avx512).level == KernelSet.detectedLevel)
        #expect(KernelSet.level(.scalar).level == .scalar)
        #expect(Kernels.activationType(for: .q4_1) == .q8_0)
        #expect(Kernels.activationType(for: .q6_K) == .q8_K)
        #expect(Kernels.activationType(for: .f16) == nil)
        #expect(Kernels.rowBytes(.q4_K, 512) == 288)
        #expect(Kernels.rowBytes(.q4_K, 500) == nil)
    }

    @Test func wrappersGiveTheCResults() throws {
        var rng = SplitMix64(seed: 9)
        let (n, k, m) = (35, 576, 5)
        let rb = KT.rowBytes(KT.q4_1, k)
        let w = KT.randomWeights(KT.q4_1, rows: n, k: k, rng: &rng)
        let x = KT.randomFloats(m * k, rng: &rng)
        let dy = KT.randomFloats(m * n, rng: &rng)
        for set in KernelSet.all {
            var want = [Float](repeating: 0, count: m * n)
            #expect(KT.matmul(KT.scalar, KT.q4_1, w, n: n, k: k, x, m: m, into: &want) == 0)
            var y = [Float](repeating: 0, count: m * n)
            try w.withUnsafeBytes { wp in
                try x.withUnsafeBufferPointer { xp in
                    try y.withUnsafeMutableBufferPointer { yp in
                        try Kernels.matmul(.q4_1, weights: wp, rowBytes: rb, rows: 0 ..< n, k: k, x: xp, m: m, y: yp, ldy: n, using: set)
                    }
                }
            }
            #expect(KT.firstDifference(KT.bits(y), KT.bits(want)) == nil, "\(set)")

            var dxWant = [Float](repeating: 0.25, count: m * k), dx = dxWant
            #expect(KT.matmulT(KT.scalar, KT.q4_1, w, n: n, k: k, dy, m: m, into: &dxWant) == 0)
            try w.withUnsafeBytes { wp in
                try dy.withUnsafeBufferPointer { dyp in
                    try dx.withUnsafeMutableBufferPointer { dxp in
                        try Kernels.matmulTransposed(.q4_1, weights: wp, rowBytes: rb, n: n, k: k, dy: dyp, m: m, dx: dxp, using: set)
                    }
                }
            }
            #expect(KT.firstDifference(KT.bits(dx), KT.bits(dxWant)) == nil, "\(set) transposed")

            let (xqWant, xrb) = KT.quantize(x, m: m, k: k, for: KT.q4_1)
            var xq = [UInt8](repeating: 0, count: m * xrb)
            try x.withUnsafeBufferPointer { xp in
                try xq.withUnsafeMutableBytes { try Kernels.quantizeActivations(.q8_0, x: xp, m: m, k: k, into: $0, rowBytes: xrb, using: set) }
            }
            #expect(xq == xqWant)
            var yqWant = [Float](repeating: 0, count: m * n), yq = yqWant
            #expect(KT.matmulQ8(KT.scalar, KT.q4_1, w, n: n, k: k, xq, xqRowBytes: xrb, m: m, into: &yqWant) == 0)
            try w.withUnsafeBytes { wp in
                try xq.withUnsafeBytes { xp in
                    try yq.withUnsafeMutableBufferPointer { yp in
                        try Kernels.matmulInt8(.q4_1, weights: wp, rowBytes: rb, rows: 0 ..< n, k: k, xq: xp, xqRowBytes: xrb, m: m,
                                               y: yp, ldy: n, using: set)
                    }
                }
            }
            #expect(KT.firstDifference(KT.bits(yq), KT.bits(yqWant)) == nil, "\(set) int8")
        }
    }

    @Test func wrappersRefuseBuffersThatAreTooSmall() {
        var rng = SplitMix64(seed: 10)
        let (n, k, m) = (4, 64, 2)
        let rb = KT.rowBytes(KT.q4_1, k)
        let w = KT.randomWeights(KT.q4_1, rows: n, k: k, rng: &rng)
        let x = [Float](repeating: 1, count: m * k)
        var y = [Float](repeating: 0, count: m * n - 1)  // one short
        w.withUnsafeBytes { wp in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    #expect(throws: KernelError.self) {
                        try Kernels.matmul(.q4_1, weights: wp, rowBytes: rb, rows: 0 ..< n, k: k, x: xp, m: m, y: yp, ldy: n)
                    }
                    #expect(throws: KernelError.self) {  // weights: one row too many
                        try Kernels.matmul(.q4_1, weights: wp, rowBytes: rb, rows: 0 ..< n + 1, k: k, x: xp, m: 1, y: yp, ldy: n + 1)
                    }
                    #expect(throws: KernelError.self) {  // x: k beyond the row
                        try Kernels.matmul(.q4_1, weights: wp, rowBytes: rb, rows: 0 ..< 1, k: k, x: xp, m: m, ldx: k + 32, y: yp, ldy: 1)
                    }
                    do {
                        try Kernels.matmulInt8(.f16, weights: wp, rowBytes: rb, rows: 0 ..< 1, k: k, xq: UnsafeRawBufferPointer(wp),
                                               xqRowBytes: 68, m: 1, y: yp, ldy: 1)
                        Issue.record("F16 has no int8 path")
                    } catch {
                        #expect((error as? KernelError)?.kind == .unsupportedType)
                    }
                    do {
                        try Kernels.matmul(.q4_1, weights: wp, rowBytes: rb, rows: 0 ..< 1, k: 48, x: xp, m: 1, y: yp, ldy: 1)
                        Issue.record("k = 48 is not whole Q4_1 blocks")
                    } catch {
                        #expect((error as? KernelError)?.kind == .invalidArgument)
                    }
                }
            }
        }
    }
}
