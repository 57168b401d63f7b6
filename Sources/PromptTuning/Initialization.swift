import Llama
import TensorIO
import Tokenizers

/// How the soft prompt's vectors start.
public enum PromptInitialization: Sendable, Equatable {
    /// Normal noise with the per-element standard deviation of the model's token embeddings (so the
    /// vectors start at a typical token's scale).
    case random
    /// Embeddings of tokens sampled uniformly among the first `vocabularyRange` ordinary tokens (for BPE
    /// vocabularies, low ids are the most frequent merges; Lester et al. sample from the 5,000 most common).
    case vocab
    /// Embeddings of this text's tokens, repeated to fill the prompt (PEFT's TEXT init).
    case text(String)
    /// Class-label embeddings (a multi-token label is averaged) first, the rest sampled as `vocab`
    /// (Lester et al. 2021, §3.2).
    case labels([String])
    /// Vectors of another prompt (a related task), truncated or repeated to fill the prompt.
    case vectors([Float])
}

/// The draws the trainer needs from its only source of randomness.
extension SplitMix64 {
    /// Uniform in [0, n).
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
    /// Standard normal (Box–Muller).
    public mutating func normal() -> Double {
        let u1 = max(unit(), 0x1p-60), u2 = unit()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }
    /// A permutation of 0..<n (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0 ..< n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, below(i + 1)) } }
        return p
    }
}

public struct InitializationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension PromptInitialization {
    /// The first `tokens` rows drawn by `vocab` init come from the ordinary tokens among these ids.
    public static let vocabularyRange = 5000

    /// The initial prompt, (tokens, C).
    /// - Throws: `InitializationError` for empty init text or labels, or vectors of another width.
    public func vectors(tokens n: Int, model: LlamaModel, tokenizer: Tokenizer, seed: UInt64) throws(InitializationError) -> [Float] {
        let C = model.config.hiddenSize
        var rng = SplitMix64(seed: seed ^ 0x5350_5249_4E49_5400)  // "SPRINIT"
        func rows(_ ids: [Int32]) -> [Float] {
            (try? model.embed(ids)) ?? []
        }
        func sampled(_ count: Int) -> [Float] {
            let limit = min(Self.vocabularyRange, model.config.vocabSize)
            var pool: [Int32] = []
            for id in 0 ..< Int32(limit) where tokenizer.tokenType(of: id) == .normal { pool.append(id) }
            if pool.isEmpty { pool = (0 ..< Int32(limit)).map { $0 } }
            return rows((0 ..< count).map { _ in pool[rng.below(pool.count)] })
        }
        switch self {
        case .random:
            let std = Self.embeddingStd(model: model)
            return (0 ..< n * C).map { _ in Float(rng.normal() * std) }
        case .vocab:
            return sampled(n)
        case .text(let text):
            let ids = tokenizer.encode(text, addSpecial: false)
            guard !ids.isEmpty else { throw InitializationError(message: "--init-text gives no tokens") }
            return rows((0 ..< n).map { ids[$0 % ids.count] })
        case .labels(let labels):
            guard !labels.isEmpty else {
                throw InitializationError(message: "labels init needs a dataset with \"choices\"")
            }
            var out: [Float] = []
            for label in labels.prefix(n) {
                let ids = tokenizer.encode(label, addSpecial: false)
                guard !ids.isEmpty else { continue }
                let e = rows(ids)
                var mean = [Float](repeating: 0, count: C)
                for t in 0 ..< ids.count { for c in 0 ..< C { mean[c] += e[t * C + c] } }
                out += mean.map { $0 / Float(ids.count) }
            }
            return out + sampled(n - out.count / C)
        case .vectors(let source):
            guard !source.isEmpty, source.count % C == 0 else {
                throw InitializationError(message: "the source prompt holds \(source.count) floats, not rows of width \(C)")
            }
            let m = source.count / C
            var out: [Float] = []
            for t in 0 ..< n { out += source[(t % m) * C ..< (t % m + 1) * C] }
            return out
        }
    }

    /// Per-element standard deviation of the token embeddings (from up to 4,096 evenly spaced rows).
    static func embeddingStd(model: LlamaModel) -> Double {
        let V = model.config.vocabSize
        let step = max(1, V / 4096)
        let ids = stride(from: 0, to: V, by: step).map { Int32($0) }
        let e = (try? model.embed(ids)) ?? []
        var s: Double = 0, s2: Double = 0
        for x in e { s += Double(x); s2 += Double(x) * Double(x) }
        let n = Double(max(1, e.count))
        return max(0, s2 / n - (s / n) * (s / n)).squareRoot()
    }
}
