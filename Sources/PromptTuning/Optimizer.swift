#if canImport(Glibc)
import Glibc
import Llama
#endif

/// How the learning rate moves over training: a linear warmup from 0, then a decay.
public enum LearningRateDecay: String, Sendable, CaseIterable {
    /// Half a cosine from the peak down to `minRate` at the last step.
    case cosine
    /// A straight line from the peak down to `minRate` at the last step.
    case linear
    /// The peak rate after warmup.
    case constant
}

/// The learning rate at each optimizer step (0-based).
public struct LearningRateSchedule: Sendable, Equatable {
    public var peak: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: LearningRateDecay
    public var minRate: Double

    public init(peak: Double, warmupSteps: Int, totalSteps: Int, decay: LearningRateDecay, minRate: Double = 0) {
        self.peak = peak
        self.warmupSteps = max(0, warmupSteps)
        self.totalSteps = max(1, totalSteps)
        self.decay = decay
        self.minRate = minRate
    }

    /// The rate for update number `step` (0-based), as Hugging Face's `get_cosine_schedule_with_warmup` /
    /// `get_linear_schedule_with_warmup` / `get_constant_schedule_with_warmup` give it (so runs compare
    /// step for step with PEFT + transformers): `peak·step/warmup` during warmup (0 at the very first
    /// update), then the decay over the remaining steps, reaching `minRate` at `totalSteps`.
    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step) / Double(max(1, warmupSteps)) }
        let span = Double(max(1, totalSteps - warmupSteps))
        let progress = Double(step - warmupSteps) / span
        switch decay {
        case .constant: return peak
        case .linear: return minRate + (peak - minRate) * max(0, 1 - progress)
        case .cosine: return minRate + (peak - minRate) * max(0, 0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}

/// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, as `torch.optim.AdamW`.
/// State and arithmetic are float32 in a fixed order, so runs are bit-reproducible.
public struct AdamW: Sendable, Equatable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float
    /// First and second moment estimates, one per parameter.
    public var m: [Float]
    public var v: [Float]
    /// Updates applied so far.
    public var step: Int = 0

    public init(parameterCount: Int, weightDecay: Float = 0) {
        self.weightDecay = weightDecay
        m = [Float](repeating: 0, count: parameterCount)
        v = m
    }

    /// One update of `parameters` with `gradient` at learning rate `lr`.
    public mutating func update(_ parameters: inout [Float], gradient: [Float], lr: Float) {
        precondition(parameters.count == m.count && gradient.count == m.count, "AdamW: size mismatch")
        step += 1
        let bc1 = 1 - Float(pow(Double(beta1), Double(step)))
        let bc2 = 1 - Float(pow(Double(beta2), Double(step)))
        let stepSize = lr / bc1
        let bc2Sqrt = bc2.squareRoot()
        let decay = 1 - lr * weightDecay
        for i in 0 ..< parameters.count {
            let g = gradient[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            let denom = v[i].squareRoot() / bc2Sqrt + epsilon
            parameters[i] = parameters[i] * decay - stepSize * m[i] / denom
        }
    }
}

/// The L2 norm of a gradient (accumulated in Double).
public func gradientNorm(_ g: [Float]) -> Double {
    var s: Double = 0
    for x in g { s += Double(x) * Double(x) }
    return s.squareRoot()
}

/// Scales `g` so its norm is at most `maxNorm` (as `torch.nn.utils.clip_grad_norm_`); returns the norm
/// before clipping.
@discardableResult
public func clipGradient(_ g: inout [Float], maxNorm: Double) -> Double {
    let norm = gradientNorm(g)
    if maxNorm > 0, norm > maxNorm {
        let scale = Float(maxNorm / (norm + 1e-6))
        for i in 0 ..< g.count { g[i] *= scale }
    }
    return norm
}
