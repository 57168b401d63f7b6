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
