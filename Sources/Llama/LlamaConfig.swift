import GGUF
import TensorIO

/// The hyper-parameters of a llama-family model, named after Hugging Face's `config.json` keys where
/// one exists. Built from GGUF metadata (`<arch>.*` keys) or from a Hugging Face `config.json`.
public struct LlamaConfig: Sendable, Equatable {
    /// Architectures this core runs.
    public static let supportedArchitectures = ["llama", "mistral", "qwen2"]

    /// "llama", "mistral" or "qwen2".
    public var architecture: String
    /// `hidden_size` (GGUF `embedding_length`).
    public var hiddenSize: Int
    /// `num_hidden_layers` (GGUF `block_count`).
    public var numHiddenLayers: Int
    /// `num_attention_heads` (GGUF `attention.head_count`).
    public var numAttentionHeads: Int
    /// `num_key_value_heads` (GGUF `attention.head_count_kv`).
    public var numKeyValueHeads: Int
    /// `intermediate_size` (GGUF `feed_forward_length`).
    public var intermediateSize: Int
    /// `vocab_size` (GGUF `vocab_size`, else the token table's length).
    public var vocabSize: Int
    /// `max_position_embeddings` (GGUF `context_length`).
    public var maxPositionEmbeddings: Int
    /// `rms_norm_eps` (GGUF `attention.layer_norm_rms_epsilon`).
    public var rmsNormEps: Float
    /// `rope_theta` (GGUF `rope.freq_base`).
    public var ropeTheta: Float
    /// Rotated dimensions per head (GGUF `rope.dimension_count`; the head size by default).
    public var ropeDimensions: Int
    /// 1 / linear RoPE scaling factor (GGUF `rope.scaling.type = linear`, `rope.scaling.factor`).
    public var ropeFreqScale: Float
    /// Whether the output head shares the token embedding (`tie_word_embeddings`).
    public var tieWordEmbeddings: Bool
    /// Whether Q/K/V projections carry biases (qwen2).
    public var attentionBias: Bool

    /// Size of one attention head.
    public var headDim: Int { hiddenSize / numAttentionHeads }
    /// How rotary pairs are formed. This depends on where the weights come from, not only on the
    /// architecture: llama.cpp's converter permutes the Q/K rows of llama and mistral models so that
    /// GGUF files pair adjacent elements (`.normal`), while Hugging Face checkpoints of every
    /// architecture pair element i with i + d/2 (`.neox`). See Formats/tensor-names.md.
    public var ropeMode: RoPEMode

    /// Reads the configuration from a GGUF file's metadata.
    /// - Throws: `ModelError` naming the missing or invalid key, or an unsupported architecture.
    public init(gguf: GGUFFile) throws(ModelError) {
        guard let arch = gguf.string("general.architecture") else {
            throw ModelError(.missingMetadata("general.architecture"), "no general.architecture in the metadata", path: gguf.path)
        }
        guard Self.supportedArchitectures.contains(arch) else {
            throw ModelError(.unsupportedArchitecture(arch),
                             "architecture '\(arch)' is not supported (supported: \(Self.supportedArchitectures.joined(separator: ", ")))",
                             path: gguf.path)
        }
        func int(_ key: String, _ fallback: Int? = nil) throws(ModelError) -> Int {
            if let v = gguf.int("\(arch).\(key)") { return v }
            if let fallback { return fallback }
            throw ModelError(.missingMetadata("\(arch).\(key)"), "missing integer metadata \(arch).\(key)", path: gguf.path)
        }
        func float(_ key: String, _ fallback: Float? = nil) throws(ModelError) -> Float {
            if let v = gguf.float("\(arch).\(key)") { return Float(v) }
            if let fallback { return fallback }
            throw ModelError(.missingMetadata("\(arch).\(key)"), "missing float metadata \(arch).\(key)", path: gguf.path)
        }
        architecture = arch
        ropeMode = arch == "qwen2" ? .neox : .normal
        hiddenSize = try int("embedding_length")
        numHiddenLayers = try int("block_count")
        numAttentionHeads = try int("attention.head_count")
        numKeyValueHeads = try int("attention.head_count_kv", numAttentionHeads)
        intermediateSize = try int("feed_forward_length")
        let tokens = gguf.array("tokenizer.ggml.tokens")?.count
        vocabSize = try int("vocab_size", tokens ?? gguf.tensor(named: "token_embd.weight")?.shape.last)
        maxPositionEmbeddings = try int("context_length")
        rmsNormEps = try float("attention.layer_norm_rms_epsilon")
        ropeTheta = try float("rope.freq_base", 10000)
        ropeDimensions = try int("rope.dimension_count", hiddenSize / max(1, numAttentionHeads))
        // As llama.cpp reads them: the type defaults to linear, and the factor is rope.scaling.factor, else
        // the older key rope.scale_linear (absent or 0: unscaled).
        let scaling = gguf.string("\(arch).rope.scaling.type") ?? "linear"
        guard scaling == "linear" || scaling == "none" else {
            throw ModelError(.invalidMetadata("\(arch).rope.scaling.type"),
                             "RoPE scaling '\(scaling)' is not supported (supported: none, linear, llama3 frequency factors)",
                             path: gguf.path)
        }
        let factor = try float("rope.scaling.factor", try float("rope.scale_linear", 0))
        ropeFreqScale = scaling == "linear" && factor > 0 ? 1 / factor : 1
        tieWordEmbeddings = gguf.tensor(named: "output.weight") == nil
        attentionBias = gguf.tensor(named: "blk.0.attn_q.bias") != nil
        try validate(path: gguf.path)
    }

    /// Reads a Hugging Face `config.json`.
    /// - Throws: `ModelError` naming the missing or invalid key.
    public init(huggingFace config: JSONValue, path: String? = nil) throws(ModelError) {
        let types = config["model_type"]?.stringValue ?? ""
        let archMap = ["llama": "llama", "mistral": "mistral", "qwen2": "qwen2"]
        guard let arch = archMap[types] else {
            throw ModelError(.unsupportedArchitecture(types), "model_type '\(types)' is not supported (supported: llama, mistral, qwen2)", path: path)
        }
        func int(_ key: String, _ fallback: Int? = nil) throws(ModelError) -> Int {
            if let v = config[key]?.intValue { return Int(v) }
            if let fallback { return fallback }
            throw ModelError(.missingMetadata(key), "config.json has no integer '\(key)'", path: path)
        }
        architecture = arch
        ropeMode = .neox  // Hugging Face checkpoints rotate halves (rotate_half), for every architecture
        hiddenSize = try int("hidden_size")
        numHiddenLayers = try int("num_hidden_layers")
        numAttentionHeads = try int("num_attention_heads")
        numKeyValueHeads = try int("num_key_value_heads", numAttentionHeads)
        intermediateSize = try int("intermediate_size")
        vocabSize = try int("vocab_size")
        maxPositionEmbeddings = try int("max_position_embeddings", 2048)
        rmsNormEps = Float(config["rms_norm_eps"]?.doubleValue ?? 1e-6)
        // transformers 5 writes RoPE settings as `rope_parameters` {rope_theta, rope_type, factor, ...}
        // instead of top-level `rope_theta` and `rope_scaling`.
        func present(_ value: JSONValue?) -> JSONValue? { value?.isNull == false ? value : nil }
        let ropeParameters = present(config["rope_parameters"])
        ropeTheta = Float(config["rope_theta"]?.doubleValue ?? ropeParameters?["rope_theta"]?.doubleValue ?? 10000)
        ropeDimensions = try int("head_dim", hiddenSize / max(1, numAttentionHeads))
        ropeFreqScale = 1
        if let scaling = present(config["rope_scaling"]) ?? ropeParameters {
            let kind = scaling["rope_type"]?.stringValue ?? scaling["type"]?.stringValue ?? ""
            guard kind == "linear" || (kind == "default" && scaling["factor"] == nil) else {
                throw ModelError(.invalidMetadata("rope_scaling"), "rope_scaling type '\(kind)' is not supported for Hugging Face directories (supported: linear)", path: path)
            }
            if kind == "linear" { ropeFreqScale = 1 / Float(scaling["factor"]?.doubleValue ?? 1) }
        }
        tieWordEmbeddings = config["tie_word_embeddings"]?.boolValue ?? false
        attentionBias = arch == "qwen2" || (config["attention_bias"]?.boolValue ?? false)
        try validate(path: path)
    }

    private func validate(path: String?) throws(ModelError) {
        func check(_ ok: Bool, _ what: String) throws(ModelError) {
            if !ok { throw ModelError(.invalidMetadata(what), "invalid model configuration: \(what)", path: path) }
        }
        try check(hiddenSize > 0 && hiddenSize <= 1 << 16, "hidden size \(hiddenSize)")
        try check(numHiddenLayers > 0 && numHiddenLayers <= 1024, "layer count \(numHiddenLayers)")
        try check(numAttentionHeads > 0 && hiddenSize % numAttentionHeads == 0,
                  "head count \(numAttentionHeads) does not divide the width \(hiddenSize)")
        try check(numKeyValueHeads > 0 && numAttentionHeads % numKeyValueHeads == 0,
                  "KV head count \(numKeyValueHeads) does not divide the head count \(numAttentionHeads)")
        try check(intermediateSize > 0 && intermediateSize <= 1 << 20, "feed-forward size \(intermediateSize)")
        try check(vocabSize > 0 && vocabSize <= 1 << 24, "vocabulary size \(vocabSize)")
        try check(ropeDimensions > 0 && ropeDimensions <= headDim && ropeDimensions % 2 == 0,
                  "RoPE dimensions \(ropeDimensions) for head size \(headDim)")
        try check(maxPositionEmbeddings > 0, "context length \(maxPositionEmbeddings)")
        try check(rmsNormEps > 0 && rmsNormEps.isFinite, "RMS norm epsilon")
        try check(ropeTheta > 0 && ropeTheta.isFinite, "RoPE base")
    }
}
