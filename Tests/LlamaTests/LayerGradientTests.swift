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

    /// Grouped-query attention of T rows after a context of `prefix` rows (0: a sequence's start; 3: a
    /// shared prompt, a KV cache or a deep prompt's prefix), gradients of queries, own keys/values and the
    /// context's keys/values.
    @Test(arguments: [0, 3])
    func attentionWithGroupedHeads(prefix: Int) {
        var rng = Rng(state: 4 + UInt64(prefix))
        let T = 5, H = 4, Hkv = 2, D = 4, S = prefix + T
        let q = rng.array(T * H * D), k = rng.array(T * Hkv * D), v = rng.array(T * Hkv * D)
        let pk = rng.array(max(1, prefix) * Hkv * D), pv = rng.array(max(1, prefix) * Hkv * D)
        let r = rng.array(T * H * D)
        func forward(_ q: [Float], _ k: [Float], _ v: [Float], _ pk: [Float], _ pv: [Float]) -> (out: [Float], probs: [Float]) {
            var out = [Float](repeating: 0, count: T * H * D), probs = [Float](repeating: 0, count: T * H * S)
            var scratch = [Float](repeating: 0, count: S)
            for head in 0 ..< H {
                attentionForward(out: &out, probs: &probs, q: q, k: k, v: v, prefixK: pk, prefixV: pv, prefix: prefix,
                                 T: T, H: H, Hkv: Hkv, D: D, head: head, scratch: &scratch)
            }
            return (out, probs)
        }
        let probs = forward(q, k, v, pk, pv).probs
        var dq = [Float](repeating: 0, count: T * H * D)
        var dk = [Float](repeating: 0, count: T * Hkv * D), dv = [Float](repeating: 0, count: T * Hkv * D)
        var dpk = [Float](repeating: 0, count: pk.count), dpv = [Float](repeating: 0, count: pv.count)
        var scratch = [Float](repeating: 0, count: S)
        for kvHead in 0 ..< Hkv {
            attentionBackward(dq: &dq, dk: &dk, dv: &dv, dPrefixK: &dpk, dPrefixV: &dpv, dout: r, probs: probs, q: q, k: k,
                              v: v, prefixK: pk, prefixV: pv, prefix: prefix, T: T, H: H, Hkv: Hkv, D: D, kvHead: kvHead,
                              scratch: &scratch)
        }
        check("attention q", x: q, analytic: dq, eps: 1e-3) { dot(forward($0, k, v, pk, pv).out, r) }
        check("attention k", x: k, analytic: dk, eps: 1e-3) { dot(forward(q, $0, v, pk, pv).out, r) }
        check("attention v", x: v, analytic: dv, eps: 1e-3) { dot(forward(q, k, $0, pk, pv).out, r) }
        if prefix > 0 {
            check("attention context k", x: pk, analytic: dpk, eps: 1e-3) { dot(forward(q, k, v, $0, pv).out, r) }
            check("attention context v", x: pv, analytic: dpv, eps: 1e-3) { dot(forward(q, k, v, pk, $0).out, r) }
        } else {
            #expect(dpk.allSatisfy { $0 == 0 } && dpv.allSatisfy { $0 == 0 }, "no context, no context gradient")
        }
    }

    /// The cross-entropy backward against central differences of its forward (one log-sum-exp for both).
    @Test func crossEntropy() {
        var rng = Rng(state: 9)
        let V = 11, target = 7, n = 3
        let z = rng.array(V, scale: 4)
        var grad = z
        let loss = grad.withUnsafeMutableBufferPointer {
            crossEntropyBackward($0.baseAddress!, count: V, target: target, meanOver: n)
        }
        func forward(_ z: [Float]) -> Double {
            z.withUnsafeBufferPointer { Llama.logSumExp($0) } - Double(z[target])
        }
        #expect(abs(loss - forward(z)) <= 1e-12 * abs(loss), "the backward's loss is the forward's")
        // Oracle: the loss in Double from scratch.
        let m = z.map(Double.init).max()!
        let exact = m + Foundation_log(z.reduce(0.0) { $0 + Foundation_exp(Double($1) - m) }) - Double(z[target])
        #expect(abs(loss - exact) <= 1e-6 * abs(exact), "loss \(loss) vs \(exact)")
        check("cross-entropy", x: z, analytic: grad, eps: 1e-3) { forward($0) / Double(n) }
    }
}

#if canImport(Glibc)
import Glibc
private func Foundation_log(_ x: Double) -> Double { Glibc.log(x) }
private func Foundation_exp(_ x: Double) -> Double { Glibc.exp(x) }
#endif
