@testable import Llama
import Testing

/// Finite-difference checks of every layer's backward, one layer at a time: the analytic input gradient of
/// L = sum(out * R) (R fixed random) against central differences of L, accumulated in Double.
@Suite struct LayerGradientTests {
    struct Rng {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1_000_000
        }
        mutating func array(_ n: Int, scale: Float = 1) -> [Float] { (0 ..< n).map { _ in next() * scale } }
    }

    /// Compares `analytic` with central differences of `loss` at every coordinate of `x`.
    func check(_ name: String, x: [Float], analytic: [Float], eps: Float = 1e-2, loss: ([Float]) -> Double) {
        var worst = 0.0
        var scale = 0.0
        for i in x.indices {
            var plus = x, minus = x
            plus[i] += eps
            minus[i] -= eps
            let numeric = (loss(plus) - loss(minus)) / (2 * Double(eps))
            worst = max(worst, abs(numeric - Double(analytic[i])))
            scale = max(scale, abs(numeric))
        }
        #expect(worst <= 2e-3 * max(scale, 1), "\(name): max |analytic - numeric| = \(worst) (scale \(scale))")
    }

    func dot(_ a: [Float], _ b: [Float]) -> Double {
        var s = 0.0
        for i in a.indices { s += Double(a[i]) * Double(b[i]) }
        return s
    }

    @Test func rmsnorm() {
        var rng = Rng(state: 1)
        let T = 3, C = 8
        let x = rng.array(T * C), w = rng.array(C), r = rng.array(T * C)
        func forward(_ x: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: T * C), rstd = [Float](repeating: 0, count: T)
            rmsnormForward(out: &out, rstd: &rstd, x: x, weight: w, T: T, C: C, eps: 1e-5)
            return out
        }
        var rstd = [Float](repeating: 0, count: T)
        var out = [Float](repeating: 0, count: T * C)
        rmsnormForward(out: &out, rstd: &rstd, x: x, weight: w, T: T, C: C, eps: 1e-5)
        var dx = [Float](repeating: 0, count: T * C)
        rmsnormBackward(dx: &dx, dy: r, x: x, rstd: rstd, weight: w, T: T, C: C)
        check("rmsnorm", x: x, analytic: dx, eps: 1e-3) { dot(forward($0), r) }
    }

    @Test func swiglu() {
        var rng = Rng(state: 2)
        let n = 16
        let g = rng.array(n, scale: 3), u = rng.array(n), r = rng.array(n)
        func forward(_ g: [Float], _ u: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n)
            swigluForward(out: &out, gate: g, up: u, count: n)
            return out
        }
        var dg = [Float](repeating: 0, count: n), du = [Float](repeating: 0, count: n)
        swigluBackward(dgate: &dg, dup: &du, dout: r, gate: g, up: u, count: n)
        check("swiglu gate", x: g, analytic: dg, eps: 1e-3) { dot(forward($0, u), r) }
        check("swiglu up", x: u, analytic: du, eps: 1e-3) { dot(forward(g, $0), r) }
    }

    @Test(arguments: [RoPEMode.normal, .neox])
    func rope(mode: RoPEMode) {
        var rng = Rng(state: 3)
        let T = 4, H = 2, D = 8
        let table = RoPETable(dims: D, base: 10000, mode: mode, maxPositions: 16)
        let positions: [Int32] = [0, 3, 7, 15]
        let x = rng.array(T * H * D), r = rng.array(T * H * D)
        func forward(_ x: [Float]) -> [Float] {
            var y = x
            table.apply(&y, T: T, heads: H, headSize: D, positions: positions)
            return y
        }
        var dx = r
        table.apply(&dx, T: T, heads: H, headSize: D, positions: positions, inverse: true)
        check("rope \(mode)", x: x, analytic: dx) { dot(forward($0), r) }
    }

    @Test func attentionWithGroupedHeads() {
        var rng = Rng(state: 4)
        let T = 5, H = 4, Hkv = 2, D = 4
        let q = rng.array(T * H * D), k = rng.array(T * Hkv * D), v = rng.array(T * Hkv * D)
        let r = rng.array(T * H * D)
        func forward(_ q: [Float], _ k: [Float], _ v: [Float]) -> (out: [Float], probs: [Float]) {
            var out = [Float](repeating: 0, count: T * H * D), probs = [Float](repeating: 0, count: T * H * T)
            var scratch = [Float](repeating: 0, count: T)
            attentionForward(out: &out, probs: &probs, q: q, kCache: k, vCache: v, T: T, pos0: 0, H: H, Hkv: Hkv, D: D,
                             heads: 0 ..< H, scratch: &scratch)
            return (out, probs)
        }
        let probs = forward(q, k, v).probs
        var dq = [Float](repeating: 0, count: T * H * D)
        var dk = [Float](repeating: 0, count: T * Hkv * D), dv = [Float](repeating: 0, count: T * Hkv * D)
        var scratch = [Float](repeating: 0, count: T)
        attentionBackward(dq: &dq, dk: &dk, dv: &dv, dout: r, probs: probs, q: q, k: k, v: v, T: T, H: H, Hkv: Hkv, D: D,
                          kvHeads: 0 ..< Hkv, scratch: &scratch)
        check("attention q", x: q, analytic: dq, eps: 1e-3) { dot(forward($0, k, v).out, r) }
        check("attention k", x: k, analytic: dk, eps: 1e-3) { dot(forward(q, $0, v).out, r) }
        check("attention v", x: v, analytic: dv, eps: 1e-3) { dot(forward(q, k, $0).out, r) }
    }
}
