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
