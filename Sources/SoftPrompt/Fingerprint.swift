import GGUF
import Llama
import Quants
import TensorIO
import Tokenizers

/// How two model fingerprints relate (`ModelFingerprint.compare(to:)`).
public enum FingerprintMatch: Sendable, Equatable {
    /// Same shape, same tokenizer, and the sketched weight rows are byte-identical (same file or an
    /// identical quantization).
    case same
    /// Same shape and tokenizer, and the weight sketches agree within quantization noise: the same
    /// base weights stored with another quantization (a prompt trained on one works on the other).
    case sameBaseOtherQuantization
    /// Not the same model; the string says why.
    case different(String)
    /// One side lacks what is needed to decide; the string says what.
    case unknown(String)
}

/// What identifies the model a soft prompt was trained for (`Formats/sprompt.md`, section 4).
///
/// The shape fields and the tokenizer hash must match exactly. The weights are identified twice: an
/// exact hash of a few stored (quantized) rows, which changes with the quantization, and a *sketch*
/// — projections of the same rows, dequantized, on fixed pseudo-random ±1 vectors — which survives
/// requantization (the noise averages out) but not different weights.
public struct ModelFingerprint: Sendable, Equatable {
    /// `general.architecture` (`"llama"`, `"qwen2"`, …).
    public var architecture: String
    /// The model width (the length of a prompt vector).
    public var embeddingLength: Int
    /// The number of transformer blocks.
    public var layerCount: Int
    /// The number of tokens.
    public var vocabSize: Int
    /// SHA-256 (lowercase hex) of the canonical tokenizer description; nil = unknown.
    public var tokenizerHash: String?
    /// The sketch algorithm version (`ModelFingerprint.sketchVersion` when computed here).
    public var sketchVersion: Int
    /// The sketch values: one projection per sketched row; nil = unknown.
    public var sketch: [Double]?
    /// The L2 norm of each sketched row (dequantized), parallel to `sketch`.
    public var sketchNorms: [Double]?
    /// SHA-256 (lowercase hex) of the sketched rows' stored bytes with their types; nil = unknown.
    public var weightsHash: String?

    /// The sketch algorithm this code computes.
    public static let sketchVersion = 1
    /// Two sketches belong to the same base weights when their Pearson correlation is at least this…
    public static let minimumCorrelation = 0.99
    /// …and no value differs by more than this many (root-mean-square) row norms.
    public static let maximumDeviation = 1.0
    /// The generator seed of the sketch ("SPROMPT1" read as a big-endian integer).
    public static let sketchSeed: UInt64 = 0x5350_524F_4D50_5431

    /// A fingerprint from stored fields (as read from a file).
    public init(architecture: String, embeddingLength: Int, layerCount: Int, vocabSize: Int,
                tokenizerHash: String? = nil, sketchVersion: Int = ModelFingerprint.sketchVersion,
                sketch: [Double]? = nil, sketchNorms: [Double]? = nil, weightsHash: String? = nil) {
        self.architecture = architecture
        self.embeddingLength = embeddingLength
        self.layerCount = layerCount
        self.vocabSize = vocabSize
        self.tokenizerHash = tokenizerHash
        self.sketchVersion = sketchVersion
        self.sketch = sketch
        self.sketchNorms = sketchNorms
        self.weightsHash = weightsHash
    }

    /// Computes the fingerprint of a loaded model. Reads 46–50 weight rows; never decodes a whole tensor.
    /// - Parameters:
    ///   - model: The model.
    ///   - tokenizer: Its tokenizer, whose vocabulary is hashed. When nil, the vocabulary stored in the
    ///     model's GGUF file is hashed if there is one; otherwise `tokenizerHash` is nil.
    /// - Throws: `SpromptError` (`.invalidValue`) if the model has no layers or rows to sketch.
    public init(model: LlamaModel, tokenizer: Tokenizer?) throws(SpromptError) {
        var vocabulary = tokenizer?.vocabulary
        if vocabulary == nil, let gguf = model.gguf { vocabulary = try? TokenizerVocabulary(gguf: gguf) }
        try self.init(model: model, vocabulary: vocabulary)
    }

    /// Computes the fingerprint of a loaded model with an explicit tokenizer vocabulary (nil: unknown).
    /// - Throws: `SpromptError` (`.invalidValue`) if the model has no layers or rows to sketch.
    public init(model: LlamaModel, vocabulary: TokenizerVocabulary?) throws(SpromptError) {
        let config = model.config
        guard config.numHiddenLayers > 0, !model.layers.isEmpty, config.vocabSize > 0 else {
            throw SpromptError(.invalidValue, "the model has no layers or no vocabulary to fingerprint")
        }
        architecture = config.architecture
        embeddingLength = config.hiddenSize
        layerCount = config.numHiddenLayers
        vocabSize = config.vocabSize
        tokenizerHash = vocabulary.map(Self.tokenizerHash)
        sketchVersion = Self.sketchVersion
        let (values, norms, hash) = Self.computeSketch(model)
        sketch = values
        sketchNorms = norms
        weightsHash = hash
    }

    /// The sketched matrices and how many rows each contributes, in order (spec section 4.3).
    static func sketchPlan(_ model: LlamaModel) -> [(WeightMatrix, Int)] {
        var plan: [(WeightMatrix, Int)] = [(model.tokenEmbedding, 16)]
        let last = model.layers.count - 1
        var layerIndices: [Int] = []
        for index in [0, last / 2, last] where !layerIndices.contains(index) { layerIndices.append(index) }
        // attn_q / attn_k are left out: Hugging Face checkpoints store their rows permuted.
        for index in layerIndices {
            let layer = model.layers[index]
            for linear in [layer.v, layer.o, layer.gate, layer.up, layer.down] { plan.append((linear.weight, 2)) }
        }
        if !model.config.tieWordEmbeddings { plan.append((model.output.weight, 4)) }
        return plan
    }

    static func computeSketch(_ model: LlamaModel) -> ([Double], [Double], String) {
        var generator = SplitMix64(seed: sketchSeed)
        var values: [Double] = []
        var norms: [Double] = []
        var hash = SHA256()
        for (matrix, count) in sketchPlan(model) {
            for _ in 0 ..< count {
                let r = Int(generator.next() % UInt64(matrix.rows))
                let row = matrix.dequantizedRow(r)
                var dot = 0.0, squares = 0.0
                for value in row {
                    let w = Double(value)
                    dot += generator.next() >> 63 == 0 ? w : -w
                    squares += w * w
                }
                values.append(dot)
                norms.append(squares.squareRoot())
                hash.update(littleEndian: matrix.type.rawValue)
                hash.update(littleEndian: UInt64(matrix.cols))
                hash.update(littleEndian: UInt64(r))
                matrix.withStoredRow(r) { hash.update($0) }
            }
        }
        return (values, norms, SHA256.hex(hash.finalize()))
    }

    /// SHA-256 (lowercase hex) of the canonical description of a tokenizer vocabulary (spec section 4.2):
    /// model kind, pre-tokenizer, token texts, types, scores and merges as stored.
    public static func tokenizerHash(_ vocabulary: TokenizerVocabulary) -> String {
        var bytes: [UInt8] = []
        func u64(_ value: Int) { withUnsafeBytes(of: UInt64(value).littleEndian) { bytes += $0 } }
        func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        func text(_ s: String) { u64(s.utf8.count); bytes += s.utf8 }
        bytes += Array("sprompt-tokenizer-v1".utf8) + [0]
        text(vocabulary.model)
        text(vocabulary.preTokenizer ?? "")
        let count = vocabulary.tokens.count
        u64(count)
        for token in vocabulary.tokens { text(token) }
        for i in 0 ..< count {
            let type = vocabulary.tokenTypes.flatMap { i < $0.count ? $0[i] : nil } ?? 1
            u32(UInt32(bitPattern: type))
        }
        for i in 0 ..< count {
            var score = vocabulary.scores.flatMap { i < $0.count ? $0[i] : nil } ?? 0
            if score == 0 { score = 0 }           // -0.0 → +0.0
            u32(score.isNaN ? 0x7FC0_0000 : score.bitPattern)
        }
        u64(vocabulary.merges.count)
        for merge in vocabulary.merges { text(merge) }
        return SHA256.hex(SHA256.hash(bytes))
    }

    /// Compares this fingerprint (a file's) with another (a loaded model's). Shape, then tokenizer,
    /// then weights; see the spec, section 4.4.
    public func compare(to other: ModelFingerprint) -> FingerprintMatch {
        if architecture != other.architecture {
            return .different("architecture \(architecture) vs \(other.architecture)")
        }
        if embeddingLength != other.embeddingLength {
            return .different("embedding length \(embeddingLength) vs \(other.embeddingLength)")
        }
        if layerCount != other.layerCount { return .different("\(layerCount) layers vs \(other.layerCount)") }
        if vocabSize != other.vocabSize { return .different("vocabulary of \(vocabSize) tokens vs \(other.vocabSize)") }
        if let a = tokenizerHash, let b = other.tokenizerHash, a != b {
            return .different("the tokenizers differ (\(a.prefix(12))… vs \(b.prefix(12))…)")
        }
        guard let a = sketch, let b = other.sketch, let na = sketchNorms, let nb = other.sketchNorms else {
            return .unknown("no weights sketch on one side")
        }
        guard sketchVersion == other.sketchVersion, a.count == b.count, na.count == a.count, nb.count == b.count,
              !a.isEmpty
        else {
            return .unknown("weights sketches of different versions or lengths (v\(sketchVersion)×\(a.count) vs "
                            + "v\(other.sketchVersion)×\(b.count))")
        }
        if let h = weightsHash, h == other.weightsHash, a == b { return .same }
        let r = Self.correlation(a, b)
        var deviation = 0.0
        for i in a.indices {
            let scale = ((na[i] * na[i] + nb[i] * nb[i]) / 2).squareRoot()
            let d = scale > 0 ? abs(a[i] - b[i]) / scale : (a[i] == b[i] ? 0 : .infinity)
            deviation = max(deviation, d)
        }
        if r >= Self.minimumCorrelation && deviation <= Self.maximumDeviation { return .sameBaseOtherQuantization }
        return .different("the weights differ (sketch correlation \(Self.format(r)), largest deviation "
                          + "\(Self.format(deviation)) row norms)")
    }

    /// Pearson correlation of two equally long series (0 when either is constant).
    static func correlation(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in a.indices {
            sab += (a[i] - ma) * (b[i] - mb)
            saa += (a[i] - ma) * (a[i] - ma)
            sbb += (b[i] - mb) * (b[i] - mb)
        }
        guard saa > 0, sbb > 0 else { return a == b ? 1 : 0 }
        return sab / (saa * sbb).squareRoot()
    }

    static func format(_ x: Double) -> String {
        guard x.isFinite else { return "\(x)" }
        let scaled = (x * 1000).rounded() / 1000
        return "\(scaled)"
    }
}

