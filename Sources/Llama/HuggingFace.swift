import Quants
import Safetensors
import TensorIO

// Hugging Face model directories: the tensor-name table shared with GGUF, loading a checkpoint as a
// `LlamaModel` (weights viewed in place), and `config.json` written from a `LlamaConfig`.
// The normative description is Formats/tensor-names.md.

/// One weight of a llama-family model under its GGUF and Hugging Face names.
package struct TensorSpec: Sendable {
    /// The GGUF name (`blk.3.attn_q.weight`).
    package let gguf: String
    /// The Hugging Face name (`model.layers.3.self_attn.q_proj.weight`).
    package let huggingFace: String
    /// The shape as Hugging Face (row-major) lists it: `[rows, cols]` for a matrix (a linear layer's
    /// `[out, in]`), `[count]` for a vector. GGUF lists the same dimensions reversed.
    package let shape: [Int]
    /// For the Q and K projections of llama and mistral (weights and biases): the head size whose
    /// rows are ordered differently in the two layouts (see `QKPermutation`); nil otherwise.
    package let permutedHeadSize: Int?

    package var isMatrix: Bool { shape.count == 2 }
    package var rows: Int { shape[0] }
    package var cols: Int { shape.count == 2 ? shape[1] : 1 }
    /// The shape in ggml order, as GGUF stores it.
    package var ggufShape: [Int] { shape.reversed() }

    /// Every weight of a model with `config`, in GGUF file order: the token embedding, each block,
    /// the output norm, and the output head unless it is tied to the embedding.
    package static func all(for config: LlamaConfig) -> [TensorSpec] {
        let C = config.hiddenSize, D = config.headDim, F = config.intermediateSize
        let H = config.numAttentionHeads, Hkv = config.numKeyValueHeads, V = config.vocabSize
        let permuted = QKPermutation.applies(to: config.architecture) ? D : nil
        var specs = [TensorSpec(gguf: "token_embd.weight", huggingFace: "model.embed_tokens.weight", shape: [V, C], permutedHeadSize: nil)]
        for i in 0 ..< config.numHiddenLayers {
            let g = "blk.\(i).", h = "model.layers.\(i)."
            func add(_ gguf: String, _ hf: String, _ shape: [Int], permute: Bool = false) {
                specs.append(TensorSpec(gguf: g + gguf, huggingFace: h + hf, shape: shape, permutedHeadSize: permute ? permuted : nil))
            }
            add("attn_norm.weight", "input_layernorm.weight", [C])
            add("attn_q.weight", "self_attn.q_proj.weight", [H * D, C], permute: true)
            if config.attentionBias { add("attn_q.bias", "self_attn.q_proj.bias", [H * D], permute: true) }
            add("attn_k.weight", "self_attn.k_proj.weight", [Hkv * D, C], permute: true)
            if config.attentionBias { add("attn_k.bias", "self_attn.k_proj.bias", [Hkv * D], permute: true) }
            add("attn_v.weight", "self_attn.v_proj.weight", [Hkv * D, C])
            if config.attentionBias { add("attn_v.bias", "self_attn.v_proj.bias", [Hkv * D]) }
            add("attn_output.weight", "self_attn.o_proj.weight", [C, H * D])
            add("ffn_norm.weight", "post_attention_layernorm.weight", [C])
            add("ffn_gate.weight", "mlp.gate_proj.weight", [F, C])
            add("ffn_up.weight", "mlp.up_proj.weight", [F, C])
            add("ffn_down.weight", "mlp.down_proj.weight", [C, F])
        }
        specs.append(TensorSpec(gguf: "output_norm.weight", huggingFace: "model.norm.weight", shape: [C], permutedHeadSize: nil))
        if !config.tieWordEmbeddings {
            specs.append(TensorSpec(gguf: "output.weight", huggingFace: "lm_head.weight", shape: [V, C], permutedHeadSize: nil))
        }
        return specs
    }

    /// Hugging Face tensors a loader skips: rotary tables some old checkpoints store (they are
    /// recomputed), and `lm_head.weight` when the configuration ties it to the embedding.
    package static func isIgnorableHuggingFaceTensor(_ name: String, config: LlamaConfig) -> Bool {
        name.hasSuffix(".rotary_emb.inv_freq") || (config.tieWordEmbeddings && name == "lm_head.weight")
    }
}

/// The row order of Q and K between llama.cpp's GGUF layout and Hugging Face's.
///
/// Hugging Face llama/mistral checkpoints rotate element i of a head with element i + D/2
/// (`rotate_half`); llama.cpp's converter reorders the rows of Q and K within each head so that
/// these pairs become adjacent, and GGUF llama models rotate (2i, 2i+1). Within a head of D rows:
///
///     GGUF row 2i + j  =  Hugging Face row j·D/2 + i      (i < D/2, j ∈ {0, 1})
///
/// qwen2 GGUF files keep Hugging Face's order (llama.cpp rotates them NeoX-style), so nothing moves.
package enum QKPermutation {
    /// Whether GGUF files of `architecture` store Q and K with adjacent rotary pairs.
    package static func applies(to architecture: String) -> Bool { architecture == "llama" || architecture == "mistral" }

    /// The Hugging Face row stored at GGUF row `g` (rows counted over all heads).
    @inline(__always) package static func huggingFaceRow(forGGUFRow g: Int, headSize D: Int) -> Int {
        let head = g / D, within = g % D
        return head * D + (within & 1) * (D / 2) + within / 2
    }

    /// The GGUF row stored at Hugging Face row `r`.
    @inline(__always) package static func ggufRow(forHuggingFaceRow r: Int, headSize D: Int) -> Int {
        let head = r / D, within = r % D, half = D / 2
        return head * D + (within % half) * 2 + within / half
    }
}

extension SafetensorsDType {
    /// The ggml type whose rows have the same encoding, for dtypes `WeightMatrix` can view in place.
    package var ggmlType: GGMLType? {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .f64: .f64
        default: nil
        }
    }
}

extension LlamaModel {
    /// Loads a model from a Hugging Face checkpoint, viewing F32, F16, BF16 (and F64) weights in place.
    ///
    /// Every tensor of `TensorSpec.all(for:)` must be present under its Hugging Face name with the
    /// shape the configuration implies, and no other tensor may be present (except rotary tables and
    /// a tied `lm_head.weight`, which are skipped). Hugging Face checkpoints pair rotary elements
    /// NeoX-style, so the model's `config.ropeMode` is `.neox` whatever `config` says.
    /// - Parameters:
    ///   - checkpoint: The safetensors file(s); kept alive by the model.
    ///   - config: The configuration, normally `LlamaConfig(huggingFace:)` of the same directory.
    /// - Throws: `ModelError` naming the tensor at fault.
    public convenience init(huggingFace checkpoint: SafetensorsCheckpoint, config: LlamaConfig) throws(ModelError) {
        var config = config
        config.ropeMode = .neox
        let path = checkpoint.indexPath ?? checkpoint.files.first?.path
        var used = Set<String>()
        func find(_ spec: TensorSpec) throws(ModelError) -> (file: SafetensorsFile, info: SafetensorsTensorInfo) {
            let name = spec.huggingFace
            guard let found = checkpoint.tensor(named: name) else {
                throw ModelError(.missingTensor(name), "tensor '\(name)' is missing (\(config.architecture) needs it)", path: path)
            }
            guard found.info.shape == spec.shape else {
                throw ModelError(.badShape(name, expected: spec.shape, found: found.info.shape),
                                 "tensor '\(name)' has shape \(found.info.shape), expected \(spec.shape)", path: path)
            }
            used.insert(name)
            return found
        }
        var weights: [String: WeightMatrix] = [:]
        var vectors: [String: [Float]] = [:]
        for spec in TensorSpec.all(for: config) {
            let (file, info) = try find(spec)
            if spec.isMatrix {
                guard let type = info.dtype.ggmlType else {
                    throw ModelError(.invalidMetadata(spec.huggingFace),
                                     "tensor '\(spec.huggingFace)' is \(info.dtype.rawValue), which cannot be computed with (supported: F32, F16, BF16, F64)",
                                     path: path)
                }
                do {
                    weights[spec.huggingFace] = try WeightMatrix(name: spec.huggingFace, type: type, rows: spec.rows, cols: spec.cols,
                                                                 bytes: file.data(for: info))
                } catch { throw ModelError(error.kind, error.message, path: path) }
            } else {
                do { vectors[spec.huggingFace] = try file.floats(for: info) } catch {
                    throw ModelError(.invalidMetadata(spec.huggingFace), "tensor '\(spec.huggingFace)': \(error.message)", path: path)
                }
            }
        }
        if let extra = checkpoint.tensorNames.first(where: {
            !used.contains($0) && !TensorSpec.isIgnorableHuggingFaceTensor($0, config: config)
        }) {
            throw ModelError(.unexpectedTensor(extra),
                             "tensor '\(extra)' is not part of a \(config.architecture) model of this shape", path: path)
        }
        func linear(_ name: String, bias: Bool) -> Linear {
            Linear(weight: weights[name + ".weight"]!, bias: bias ? vectors[name + ".bias"]! : nil)
        }
        var layers: [LlamaLayer] = []
        for i in 0 ..< config.numHiddenLayers {
            let p = "model.layers.\(i)."
            let bias = config.attentionBias
            layers.append(LlamaLayer(
                attnNorm: vectors[p + "input_layernorm.weight"]!,
                q: linear(p + "self_attn.q_proj", bias: bias),
                k: linear(p + "self_attn.k_proj", bias: bias),
                v: linear(p + "self_attn.v_proj", bias: bias),
                o: linear(p + "self_attn.o_proj", bias: false),
                ffnNorm: vectors[p + "post_attention_layernorm.weight"]!,
                gate: linear(p + "mlp.gate_proj", bias: false),
                up: linear(p + "mlp.up_proj", bias: false),
                down: linear(p + "mlp.down_proj", bias: false)))
        }
        let embedding = weights["model.embed_tokens.weight"]!
        let output = config.tieWordEmbeddings ? Linear(weight: embedding, bias: nil) : linear("lm_head", bias: false)
        self.init(config: config, tokenEmbedding: embedding, layers: layers, outputNorm: vectors["model.norm.weight"]!,
                  output: output, ropeFreqFactors: nil, owner: checkpoint)
    }

    /// Loads a model from a Hugging Face directory: `config.json` and `model.safetensors` or a
    /// sharded `model.safetensors.index.json`.
    /// - Parameter path: The directory.
    /// - Throws: `FileError` or `JSONError` for an unreadable `config.json`, `SafetensorsError` for
    ///   a broken checkpoint, `ModelError` for a configuration or tensor the model cannot use.
    public convenience init(huggingFaceDirectory path: String) throws {
        let config = try LlamaConfig(huggingFaceDirectory: path)
        let checkpoint = try SafetensorsCheckpoint(path: path)
        try self.init(huggingFace: checkpoint, config: config)
    }
}

extension LlamaConfig {
    /// Reads `config.json` of a Hugging Face directory.
    /// - Throws: `FileError`, `JSONError` or `ModelError`.
    public init(huggingFaceDirectory path: String) throws {
        let configPath = path + "/config.json"
        let json = try JSON.parse(try readFile(configPath, limit: 16 << 20))
        try self.init(huggingFace: json, path: configPath)
    }

    /// The Hugging Face class names of each architecture.
    static let huggingFaceClasses = ["llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"]

    /// A `config.json` for transformers describing this configuration.
    /// - Parameters:
    ///   - torchDType: `"float32"`, `"float16"` or `"bfloat16"`: the dtype of the weights.
    ///   - bosTokenID: `bos_token_id`, if any.
    ///   - eosTokenID: `eos_token_id`, if any.
    /// - Returns: The object, keys in a fixed order.
    /// - Throws: `ModelError.invalidMetadata` when the configuration has no `config.json` spelling
    ///   (llama3-style frequency factors, partial rotary dimensions).
    public func huggingFaceJSON(torchDType: String, bosTokenID: Int32? = nil, eosTokenID: Int32? = nil)
        throws(ModelError) -> JSONValue
    {
        guard let className = Self.huggingFaceClasses[architecture] else {
            throw ModelError(.unsupportedArchitecture(architecture), "no Hugging Face class for '\(architecture)'")
        }
        guard ropeDimensions == headDim else {
            throw ModelError(.invalidMetadata("rope.dimension_count"),
                             "RoPE over \(ropeDimensions) of \(headDim) head dimensions has no config.json spelling for \(architecture)")
        }
        // transformers' llama puts a bias on o_proj too when attention_bias is set, and qwen2 always
        // has Q/K/V biases: only the combinations both sides agree on are written.
        guard attentionBias == (architecture == "qwen2") else {
            throw ModelError(.invalidMetadata("attention_bias"),
                             "\(architecture) with\(attentionBias ? "" : "out") Q/K/V biases has no transformers equivalent")
        }
        // Floats are written with their shortest float32 spelling (1e-05, not 9.999999747378752e-06).
        func number(_ value: Float) -> JSONValue { .double(Double("\(value)") ?? Double(value)) }
        var object: JSONObject = [
            "architectures": [.string(className)],
            "model_type": .string(architecture),
            "hidden_size": .int(Int64(hiddenSize)),
            "intermediate_size": .int(Int64(intermediateSize)),
            "num_hidden_layers": .int(Int64(numHiddenLayers)),
            "num_attention_heads": .int(Int64(numAttentionHeads)),
            "num_key_value_heads": .int(Int64(numKeyValueHeads)),
            "head_dim": .int(Int64(headDim)),
            "vocab_size": .int(Int64(vocabSize)),
            "max_position_embeddings": .int(Int64(maxPositionEmbeddings)),
            "rms_norm_eps": number(rmsNormEps),
            "rope_theta": number(ropeTheta),
            "rope_scaling": ropeFreqScale == 1 ? .null
                : ["type": "linear", "rope_type": "linear", "factor": number(1 / ropeFreqScale)],
            "hidden_act": "silu",
            "tie_word_embeddings": .bool(tieWordEmbeddings),
            "torch_dtype": .string(torchDType),
            "use_cache": true,
            "initializer_range": 0.02,
        ]
        switch architecture {
        case "llama":
            object["attention_bias"] = .bool(attentionBias)
            object["attention_dropout"] = 0.0
            object["mlp_bias"] = false
            object["pretraining_tp"] = 1
        case "mistral":
            object["sliding_window"] = .null
            object["attention_dropout"] = 0.0
        default:  // qwen2: biases on Q/K/V are implied by the architecture
            object["use_sliding_window"] = false
            object["sliding_window"] = .null
            object["max_window_layers"] = .int(Int64(numHiddenLayers))
            object["attention_dropout"] = 0.0
        }
        if let bosTokenID { object["bos_token_id"] = .int(Int64(bosTokenID)) }
        if let eosTokenID { object["eos_token_id"] = .int(Int64(eosTokenID)) }
        return .object(object)
    }
}
