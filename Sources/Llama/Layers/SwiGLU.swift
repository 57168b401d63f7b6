// SwiGLU gate: h[t, j] = silu(gate[t, j]) * up[t, j],  silu(g) = g / (1 + exp(-g)).

/// - Parameters:
///   - out: (T, F) output.
///   - gate: (T, F) gate projection.
///   - up: (T, F) up projection.
@inlinable
func swigluForward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
    for i in 0 ..< count {
        let g = gate[i]
        out[i] = g / (1 + expf(-g)) * up[i]
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Backward of `swigluForward`: h = silu(g) * u.
///
///   dg = dh * u * s * (1 + g * (1 - s)),  du = dh * g * s,  s = sigmoid(g)
/// - Parameters:
///   - dgate, dup: (T, F) gradients, written (not accumulated).
///   - dout: (T, F) gradient of h.
@inlinable
func swigluBackward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                    gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
    for i in 0 ..< count {
        let g = gate[i]
        let s = 1 / (1 + expf(-g))
        let silu = g * s
        dup[i] = dout[i] * silu
        dgate[i] = dout[i] * up[i] * s * (1 + g * (1 - s))
    }
}
