// RMSNorm, forward (and, with the training work, backward) side by side.
//
//   out[t, c] = x[t, c] * rstd[t] * weight[c],   rstd[t] = 1 / sqrt(mean_c(x[t, c]^2) + eps)
//
// The sum of squares is accumulated in Double, as ggml does (ggml_float), so long rows lose nothing.

/// RMSNorm over `T` rows of width `C`.
/// - Parameters:
///   - out: (T, C) output; may alias `x`.
///   - rstd: (T) saved reciprocal RMS for the backward pass, or nil.
///   - x: (T, C) input.
///   - weight: (C) gain.
@inlinable
func rmsnormForward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>?,
                    x: UnsafePointer<Float>, weight: UnsafePointer<Float>, T: Int, C: Int, eps: Float) {
    for t in 0 ..< T {
        let row = x + t * C
        var sum: Double = 0
        for c in 0 ..< C { sum += Double(row[c] * row[c]) }
        let mean = Float(sum / Double(C))
        let scale: Float = 1 / (mean + eps).squareRoot()
        rstd?[t] = scale
        let o = out + t * C
        for c in 0 ..< C { o[c] = (row[c] * scale) * weight[c] }
    }
}

/// Backward of `rmsnormForward` with respect to its input (the gain is frozen).
///
///   y[c] = x[c] * r * w[c],  r = (mean(x^2) + eps)^(-1/2)
///   dx[c] += r * w[c] * dy[c] - x[c] * r^3 / C * sum_j(dy[j] * w[j] * x[j])
/// - Parameters:
///   - dx: (T, C) input gradient, accumulated into.
///   - dy: (T, C) output gradient.
///   - x: (T, C) the forward input.
///   - rstd: (T) saved by the forward.
@inlinable
func rmsnormBackward(dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                     rstd: UnsafePointer<Float>, weight: UnsafePointer<Float>, T: Int, C: Int) {
    for t in 0 ..< T {
        let xr = x + t * C, dyr = dy + t * C, dxr = dx + t * C
        let r = rstd[t]
        var dot: Double = 0
        for c in 0 ..< C { dot += Double(dyr[c] * weight[c]) * Double(xr[c]) }
        let k = Float(dot) * r * r * r / Float(C)
        for c in 0 ..< C { dxr[c] += r * weight[c] * dyr[c] - xr[c] * k }
    }
}
