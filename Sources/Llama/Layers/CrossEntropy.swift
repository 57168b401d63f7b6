// Log-sum-exp and next-token cross-entropy, forward and backward side by side.
//
//   lse(z) = m + log Σ_j exp(z_j - m),  m = max_j z_j        (the sum accumulated in Double)
//   loss = lse(z) - z_target;  d loss / d z_j = softmax(z)_j - [j = target]

/// The maximum of a row and Σ exp(z_j - max) accumulated in Double: the one log-sum-exp every loss and
/// score of the package is computed from.
@inline(__always)
func logSumExpParts(_ z: UnsafePointer<Float>, _ count: Int) -> (max: Float, sum: Double) {
    var m = -Float.infinity
    for j in 0 ..< count { m = max(m, z[j]) }
    var sum: Double = 0
    for j in 0 ..< count { sum += Double(expf(z[j] - m)) }
    return (m, sum)
}

/// log Σ_j exp(z_j) of one row of logits, computed as the training loss computes it (same bits).
public func logSumExp(_ z: UnsafeBufferPointer<Float>) -> Double {
    guard let base = z.baseAddress else { return -.infinity }
    let (m, sum) = logSumExpParts(base, z.count)
    return Double(m) + _log(sum)
}

/// −log softmax(z)[target] from the row's `logSumExpParts` and the target's logit.
@inline(__always)
func crossEntropy(_ parts: (max: Float, sum: Double), logit: Float) -> Double {
    Double(parts.max) + _log(parts.sum) - Double(logit)
}

/// `crossEntropyForward`, and the row overwritten with its gradient in a mean over `n` targets:
/// d(loss / n)/d(z) = (softmax(z) − onehot) / n.
/// - Returns: the loss of the row.
@inline(__always)
func crossEntropyBackward(_ z: UnsafeMutablePointer<Float>, count: Int, target: Int, meanOver n: Int) -> Double {
    let (m, sum) = logSumExpParts(z, count)
    let loss = crossEntropy((m, sum), logit: z[target])
    let scale = Float(1 / (sum * Double(n)))
    for j in 0 ..< count { z[j] = expf(z[j] - m) * scale }
    z[target] -= 1 / Float(n)
    return loss
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
