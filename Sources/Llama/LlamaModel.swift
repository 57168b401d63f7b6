import GGUF
import Quants
import TensorIO

/// The weights of one transformer block.
public struct LlamaLayer: Sendable {
    public let attnNorm: [Float]  // (C)
    public let q: Linear          // (H*D, C)
    public let k: Linear          // (Hkv*D, C)
    public let v: Linear          // (Hkv*D, C)
    public let o: Linear          // (C, H*D)
    public let ffnNorm: [Float]   // (C)
    public let gate: Linear       // (F, C)
    public let up: Linear         // (F, C)
    public let down: Linear       // (C, F)
}

/// A frozen llama-family model: configuration and weights, read in place from a mapped file.
///
/// There is no API that mutates weights: the model is frozen by construction. Quantized matrices stay
/// quantized and mapped; only norms and biases (tiny) are copied to float arrays.
public final class LlamaModel: @unchecked Sendable {
    // @unchecked: immutable after init; the storage the weights point into is kept alive by `owner`.
    public let config: LlamaConfig
    public let tokenEmbedding: WeightMatrix  // (V, C)
    public let layers: [LlamaLayer]
    public let outputNorm: [Float]           // (C)
    public let output: Linear                // (V, C), the token embedding when tied
    public let ropeFreqFactors: [Float]?
    /// The GGUF file the model was read from, when it was.
    public let gguf: GGUFFile?
    /// Keeps alive the storage the weight views point into: the GGUF file, a safetensors checkpoint,
    /// or buffers owned by the loader.
    private let owner: AnyObject

    /// Assembles a model from weights a loader has already checked against `config` (used by the
    /// Hugging Face loader, `init(huggingFace:config:)`).
    /// - Parameter owner: The object that keeps the memory behind every `WeightMatrix` alive.
    init(config: LlamaConfig, tokenEmbedding: WeightMatrix, layers: [LlamaLayer], outputNorm: [Float],
         output: Linear, ropeFreqFactors: [Float]?, owner: AnyObject) {
        self.config = config
        self.tokenEmbedding = tokenEmbedding
        self.layers = layers
        self.outputNorm = outputNorm
        self.output = output
        self.ropeFreqFactors = ropeFreqFactors
        self.gguf = nil
        self.owner = owner
    }

    /// Loads a model from a GGUF file: every tensor the architecture needs must be present with the shape
    /// the metadata implies, and no other tensor may be present.
    /// - Throws: `ModelError` naming the key or tensor at fault.
    public init(gguf: GGUFFile) throws(ModelError) {
        let config = try LlamaConfig(gguf: gguf)
        self.config = config
        self.gguf = gguf
        owner = gguf
        var used = Set<String>()
        let path = gguf.path
        func tensor(_ name: String, _ shape: [Int]) throws(ModelError) -> GGUFTensorInfo {
            guard let info = gguf.tensor(named: name) else {
                throw ModelError(.missingTensor(name), "tensor '\(name)' is missing (\(config.architecture) needs it)", path: path)
            }
            guard info.shape == shape else {
                throw ModelError(.badShape(name, expected: shape, found: info.shape),
                                 "tensor '\(name)' has shape \(info.shape), expected \(shape)", path: path)
            }
            used.insert(name)
            return info
        }
        func vector(_ name: String, _ count: Int) throws(ModelError) -> [Float] {
            let info = try tensor(name, [count])
            do {
                return try Quantization.dequantize(info.type, bytes: gguf.data(for: info), count: count)
            } catch {
                throw ModelError(.unsupportedTensorType(name, info.type), "tensor '\(name)': \(error)", path: path)
            }
        }
        func matrix(_ name: String, rows: Int, cols: Int) throws(ModelError) -> WeightMatrix {
            let info = try tensor(name, [cols, rows])
            do {
                return try WeightMatrix(name: name, type: info.type, rows: rows, cols: cols, bytes: gguf.data(for: info))
            } catch { throw ModelError(error.kind, error.message, path: path) }
        }
        func linear(_ name: String, rows: Int, cols: Int, bias: Bool) throws(ModelError) -> Linear {
            Linear(weight: try matrix(name + ".weight", rows: rows, cols: cols),
                   bias: bias ? try vector(name + ".bias", rows) : nil)
        }
        let C = config.hiddenSize, D = config.headDim
        let H = config.numAttentionHeads, Hkv = config.numKeyValueHeads, F = config.intermediateSize
        tokenEmbedding = try matrix("token_embd.weight", rows: config.vocabSize, cols: C)
        var layers: [LlamaLayer] = []
        for i in 0 ..< config.numHiddenLayers {
            let p = "blk.\(i)."
            let bias = config.attentionBias
            layers.append(LlamaLayer(
                attnNorm: try vector(p + "attn_norm.weight", C),
                q: try linear(p + "attn_q", rows: H * D, cols: C, bias: bias),
                k: try linear(p + "attn_k", rows: Hkv * D, cols: C, bias: bias),
                v: try linear(p + "attn_v", rows: Hkv * D, cols: C, bias: bias),
                o: try linear(p + "attn_output", rows: C, cols: H * D, bias: false),
                ffnNorm: try vector(p + "ffn_norm.weight", C),
                gate: try linear(p + "ffn_gate", rows: F, cols: C, bias: false),
                up: try linear(p + "ffn_up", rows: F, cols: C, bias: false),
                down: try linear(p + "ffn_down", rows: C, cols: F, bias: false)))
        }
        self.layers = layers
        outputNorm = try vector("output_norm.weight", C)
        if config.tieWordEmbeddings {
            output = Linear(weight: tokenEmbedding, bias: nil)
        } else {
            output = Linear(weight: try matrix("output.weight", rows: config.vocabSize, cols: C), bias: nil)
        }
        ropeFreqFactors = gguf.tensor(named: "rope_freqs.weight") != nil
            ? try vector("rope_freqs.weight", config.ropeDimensions / 2) : nil
        if let extra = gguf.tensors.first(where: { !used.contains($0.name) }) {
            throw ModelError(.unexpectedTensor(extra.name),
                             "tensor '\(extra.name)' is not part of a \(config.architecture) model of this shape", path: path)
        }
    }

    /// The input rows of a sequence, (T, C): embedding blocks as given, token ids embedded.
    /// - Throws: `ModelError.invalidInput` for an embedding block that is not whole rows of the width, or a
    ///   token id outside the vocabulary.
    public func inputRows(_ inputs: [ModelInput]) throws(ModelError) -> [Float] {
        let C = config.hiddenSize
        var x: [Float] = []
        for input in inputs {
            switch input {
            case .embeddings(let rows):
                guard rows.count % C == 0 else {
                    throw ModelError(.invalidInput, "embeddings hold \(rows.count) floats, not a multiple of the width \(C)")
                }
                x += rows
            case .tokens(let ids):
                x += try embed(ids)
            }
        }
        return x
    }

    /// The embedding rows of `tokens`, (T, C), decoded from the (possibly quantized) token table.
    /// - Throws: `ModelError.invalidInput` for an id outside the vocabulary.
    public func embed(_ tokens: [Int32]) throws(ModelError) -> [Float] {
        let C = config.hiddenSize
        var out = [Float](repeating: 0, count: tokens.count * C)
        for (t, id) in tokens.enumerated() {
            guard id >= 0 && Int(id) < config.vocabSize else {
                throw ModelError(.invalidInput, "token id \(id) is outside the vocabulary (0..<\(config.vocabSize))")
            }
            out.withUnsafeMutableBufferPointer { tokenEmbedding.dequantizeRow(Int(id), into: $0.baseAddress! + t * C) }
        }
        return out
    }
}
