// Rotary position embedding, forward (and backward, which is the rotation by -theta).
//
// Two pairings, as in ggml:
//   .normal (llama, mistral; GGUF's converter permuted Q/K so pairs are adjacent): (x[2i], x[2i+1])
//   .neox   (qwen2):                                                              (x[i], x[i + d/2])
// theta(pos, i) = pos * freqScale * base^(-2i/d) / freqFactor[i]
// Angles are computed in Double and rounded once, so long positions keep their precision.

/// How rotary pairs are formed within a head.
public enum RoPEMode: Sendable, Equatable {
    case normal, neox
}

/// Precomputed cos/sin tables for positions `0 ..< maxPositions`.
public struct RoPETable: Sendable {
    public let dims: Int
    public let mode: RoPEMode
    /// (P, dims/2) cosines and sines.
    var cos: [Float]
    var sin: [Float]

    /// - Parameters:
    ///   - dims: rotated dimensions per head (`rope.dimension_count`, usually the head size).
    ///   - base: `rope.freq_base`.
    ///   - freqScale: 1 / linear scaling factor (1 when unscaled).
    ///   - freqFactors: per-pair divisors (llama3 scaling, `rope_freqs.weight`), or nil.
    public init(dims: Int, base: Float, mode: RoPEMode, maxPositions: Int, freqScale: Float = 1,
                freqFactors: [Float]? = nil) {
        self.dims = dims
        self.mode = mode
        let half = dims / 2
        cos = [Float](repeating: 0, count: maxPositions * half)
        sin = [Float](repeating: 0, count: maxPositions * half)
        var inv = [Double](repeating: 0, count: half)
        for i in 0 ..< half {
            inv[i] = Double(freqScale) * pow(Double(base), -2.0 * Double(i) / Double(dims))
            if let f = freqFactors { inv[i] /= Double(f[i]) }
        }
        for p in 0 ..< maxPositions {
            for i in 0 ..< half {
                let angle = Double(p) * inv[i]
                cos[p * half + i] = Float(_cos(angle))
                sin[p * half + i] = Float(_sin(angle))
            }
        }
    }

    public var maxPositions: Int { cos.count / max(1, dims / 2) }

    /// Rotates `heads` heads of size `headSize` at each of `T` rows, in place.
    /// - Parameters:
    ///   - x: (T, heads, headSize), rotated in place.
    ///   - positions: (T) position of each row.
    ///   - inverse: rotate by -theta (the backward pass).
    func apply(_ x: UnsafeMutablePointer<Float>, T: Int, heads: Int, headSize: Int,
               positions: UnsafePointer<Int32>, inverse: Bool = false) {
        let half = dims / 2
        cos.withUnsafeBufferPointer { cosTable in
            sin.withUnsafeBufferPointer { sinTable in
                for t in 0 ..< T {
                    let p = Int(positions[t])
                    let c = cosTable.baseAddress! + p * half
                    let s = sinTable.baseAddress! + p * half
                    let sign: Float = inverse ? -1 : 1
                    for h in 0 ..< heads {
                        let v = x + (t * heads + h) * headSize
                        for i in 0 ..< half {
                            let (a, b) = mode == .normal ? (2 * i, 2 * i + 1) : (i, i + half)
                            let x0 = v[a], x1 = v[b]
                            let si = sign * s[i]
                            v[a] = x0 * c[i] - x1 * si
                            v[b] = x0 * si + x1 * c[i]
                        }
                    }
                }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
