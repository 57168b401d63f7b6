#if canImport(Glibc)
import Glibc
#endif
import GGUF
import Llama
import ModelConversion
import Quants
import Safetensors
import TensorIO
import Testing
import TestSupport
import Tokenizers

/// Hugging Face directories: loading, and conversion to and from GGUF.
///
/// Oracles: transformers (float32) logits of two tiny random models it saved itself
/// (Tests/Fixtures/hf, from Tools/scripts/gen_hf_fixtures.py: a BF16 sharded llama with an untied head,
/// an F16 qwen2 with Q/K/V biases, tied embeddings and linear RoPE scaling), transformers' top-32 logits
/// on the directory we convert the default model into, and round trips (weights bit-exact).
@Suite struct ConversionTests {
    static let tinyModels = ["tiny-llama", "tiny-qwen2"]

    struct Tiny {
        let directory: String
        let ids: [Int32]
        let logits: [Float]  // transformers, (T, V)
    }

    static func tiny(_ name: String) throws -> Tiny {
        let meta = try JSON.parse(try readFile(TestSupport.fixture("hf/tiny.json")))
        let entry = try #require(meta["models"]?[name])
        let ids = try #require(entry["ids"]?.arrayValue).map { Int32($0.intValue!) }
        let array = try NPY.read(path: TestSupport.fixture("hf/" + entry["logits"]!.stringValue!))
        return Tiny(directory: TestSupport.fixture("hf/" + name), ids: ids, logits: try #require(array.floats()))
    }

    static func logits(_ model: LlamaModel, _ ids: [Int32]) throws -> [Float] {
        let session = try InferenceSession(model: model, capacity: max(16, ids.count), threads: 2)
        return try session.forward([.tokens(ids)], logits: .all)
    }

    /// The largest KL(p ‖ q) over rows of (T, V) logits, and the fraction of rows with the same argmax.
    static func klAndAgreement(_ p: [Float], _ q: [Float], vocab V: Int) -> (kl: Double, agree: Double) {
        var worst = 0.0, same = 0
        let rows = p.count / V
        for t in 0 ..< rows {
            let a = p[t * V ..< (t + 1) * V].map(Double.init), b = q[t * V ..< (t + 1) * V].map(Double.init)
            func logSoftmax(_ x: [Double]) -> [Double] {
                let m = x.max()!
                let s = x.reduce(0) { $0 + exp($1 - m) }
                return x.map { $0 - m - log(s) }
            }
            let la = logSoftmax(a), lb = logSoftmax(b)
            var kl = 0.0
            for i in 0 ..< V { kl += exp(la[i]) * (la[i] - lb[i]) }
            worst = max(worst, kl)
            if a.indices.max(by: { a[$0] < a[$1] }) == b.indices.max(by: { b[$0] < b[$1] }) { same += 1 }
        }
        return (worst, Double(same) / Double(max(1, rows)))
    }

    /// Removes a directory this test created and the files in it.
    static func removeTree(_ path: String) {
        for name in (try? listDirectory(path)) ?? [] {
            let child = path + "/" + name
            if isDirectory(child) { removeTree(child) } else { unlink(child) }
        }
        rmdir(path)
    }

    // MARK: - Tiny models (no default model needed)

    @Test(arguments: tinyModels)
    func huggingFaceDirectoryMatchesTransformers(_ name: String) throws {
        let tiny = try Self.tiny(name)
        let model = try LlamaModel(huggingFaceDirectory: tiny.directory)
        #expect(model.config.ropeMode == .neox)
        #expect(model.gguf == nil)
        let ours = try Self.logits(model, tiny.ids)
        let diff = TestSupport.maxAbsDiff(ours, tiny.logits)
        #expect(diff <= 1e-4, "\(name): max abs diff to transformers \(diff)")
    }

    @Test(arguments: tinyModels)
    func convertsToGGUFAndBackExactly(_ name: String) throws {
        let tiny = try Self.tiny(name)
        let work = TestSupport.temporaryDirectory("hf-convert")
        defer { Self.removeTree(work) }
        let hfModel = try LlamaModel(huggingFaceDirectory: tiny.directory)
        let reference = try Self.logits(hfModel, tiny.ids)

        // HF → GGUF (f32): llama/mistral Q/K rows permuted, adjacent-pair RoPE.
        let summary = try ModelConversion.convertHuggingFaceToGGUF(directory: tiny.directory, path: work + "/m.gguf", type: .f32)
        #expect(summary.substitutions.isEmpty)
        let gguf = try GGUFFile(path: work + "/m.gguf")
        let ggufModel = try LlamaModel(gguf: gguf)
        #expect(ggufModel.config.ropeMode == (name == "tiny-llama" ? .normal : .neox))
        #expect(ggufModel.config.ropeTheta == hfModel.config.ropeTheta)
        #expect(ggufModel.config.ropeFreqScale == hfModel.config.ropeFreqScale)
        let viaGGUF = try Self.logits(ggufModel, tiny.ids)
        #expect(TestSupport.maxAbsDiff(viaGGUF, reference) <= 1e-5)
        #expect(TestSupport.maxAbsDiff(viaGGUF, tiny.logits) <= 1e-4)

        // The permutation itself: GGUF row 2i+j of a head is Hugging Face row j·D/2 + i.
        let checkpoint = try SafetensorsCheckpoint(path: tiny.directory)
        let hfQ = try checkpoint.floats(named: "model.layers.0.self_attn.q_proj.weight")
        let info = try #require(gguf.tensor(named: "blk.0.attn_q.weight"))
        let ggufQ = try Quantization.dequantize(info.type, bytes: gguf.data(for: info), count: info.elementCount)
        let C = hfModel.config.hiddenSize, D = hfModel.config.headDim
        for g in [0, 1, 2, 3, D - 1, D, D + 1] {
            let within = g % D
            let h = name == "tiny-llama" ? (g / D) * D + (within % 2) * (D / 2) + within / 2 : g
            #expect(Array(ggufQ[g * C ..< (g + 1) * C]) == Array(hfQ[h * C ..< (h + 1) * C]), "row \(g)")
        }

        // Tokenizer metadata: the same vocabulary as read from tokenizer.json.
        let original = try TokenizerVocabulary(huggingFaceDirectory: tiny.directory)
        let stored = try TokenizerVocabulary(gguf: gguf)
        #expect(stored.tokens == original.tokens && stored.tokenTypes == original.tokenTypes && stored.merges == original.merges)
        #expect(stored.preTokenizer == original.preTokenizer && stored.bosTokenID == original.bosTokenID)
        #expect(stored.eosTokenID == original.eosTokenID && stored.addBOS == original.addBOS && stored.addEOS == original.addEOS)
        #expect(gguf.string("general.architecture") == hfModel.config.architecture)
        #expect(gguf.string("general.name") == name)

        // GGUF → HF (f32): the original weights, in Hugging Face order again.
        try ModelConversion.convertGGUFToHuggingFace(gguf, directory: work + "/back")
        let back = try SafetensorsCheckpoint(path: work + "/back")
        #expect(Set(back.tensorNames) == Set(checkpoint.tensorNames))
        for tensor in checkpoint.tensorNames {
            #expect(try back.floats(named: tensor) == checkpoint.floats(named: tensor), "\(tensor)")
            #expect(back.tensor(named: tensor)?.info.dtype == .f32)
        }
        let backModel = try LlamaModel(huggingFaceDirectory: work + "/back")
        #expect(backModel.config.ropeTheta == hfModel.config.ropeTheta && backModel.config.ropeFreqScale == hfModel.config.ropeFreqScale)
        #expect(try Self.logits(backModel, tiny.ids) == reference)
        let backVocabulary = try TokenizerVocabulary(huggingFaceDirectory: work + "/back")
        #expect(backVocabulary == original)
        #expect(try listDirectory(work).allSatisfy { !$0.contains(".tmp-") })
    }

    @Test func quantizedGGUFFollowsLlamaCppTypeChoices() throws {
        let tiny = try Self.tiny("tiny-llama")
        let work = TestSupport.temporaryDirectory("hf-quant")
        defer { Self.removeTree(work) }
        let reference = try Self.logits(try LlamaModel(huggingFaceDirectory: tiny.directory), tiny.ids)
        let V = 601
        for (type, maxKL) in [(ModelConversion.WeightType.q8_0, 0.01), (.q4_K, 0.5), (.q4_0, 1.0), (.bf16, 0.001)] {
            let path = work + "/\(type.rawValue).gguf"
            let summary = try ModelConversion.convertHuggingFaceToGGUF(directory: tiny.directory, path: path, type: type)
            let gguf = try GGUFFile(path: path)
            for tensor in gguf.tensors {
                let expected: GGMLType
                if tensor.shape.count == 1 {
                    expected = .f32
                } else if tensor.name == "output.weight" && type.isQuantized && type != .q8_0 {
                    expected = .q8_0  // the head stays Q6_K, and Q8_0 when rows (32) are not multiples of 256
                } else if type == .q4_K {
                    expected = .q5_0  // rows of 32 and 64 elements cannot hold 256-element blocks
                } else {
                    expected = type.ggmlType
                }
                #expect(tensor.type == expected, "\(type) \(tensor.name)")
            }
            #expect(summary.substitutions.count == (type == .q4_K ? 16 : type == .q4_0 ? 1 : 0))
            let logits = try Self.logits(try LlamaModel(gguf: gguf), tiny.ids)
            let (kl, agree) = Self.klAndAgreement(reference, logits, vocab: V)
            print("tiny-llama \(type.rawValue): max KL \(kl), top-1 agreement \(agree)")
            #expect(kl <= maxKL, "\(type): KL \(kl)")
            #expect(agree >= (type.isQuantized && type != .q8_0 ? 0.5 : 0.9), "\(type): top-1 agreement \(agree)")
        }
    }

    @Test func refusesBrokenDirectoriesAndUnsafeDestinations() throws {
        let tiny = try Self.tiny("tiny-qwen2")
        let work = TestSupport.temporaryDirectory("hf-refuse")
        defer { Self.removeTree(work) }
        let source = try SafetensorsCheckpoint(path: tiny.directory)
        func directory(_ name: String, dropping dropped: String?, adding extra: String?) throws -> String {
            let path = work + "/" + name
            try makeDirectories(path)
            try AtomicFile.write(to: path + "/config.json", bytes: readFile(tiny.directory + "/config.json"))
            var writer = SafetensorsWriter()
            for tensor in source.tensorNames where tensor != dropped {
                let (file, info) = source.tensor(named: tensor)!
                try writer.add(tensor, dtype: info.dtype, shape: info.shape, bytes: Array(file.data(for: info)))
            }
            if let extra { try writer.add(extra, shape: [2], floats: [1, 2]) }
            try writer.write(to: path + "/model.safetensors")
            return path
        }
        let missing = try directory("missing", dropping: "model.layers.1.self_attn.k_proj.bias", adding: nil)
        let missingError = #expect(throws: ModelError.self) { _ = try LlamaModel(huggingFaceDirectory: missing) }
        #expect(missingError?.kind == .missingTensor("model.layers.1.self_attn.k_proj.bias"))
        let extra = try directory("extra", dropping: nil, adding: "model.layers.0.mlp.extra.weight")
        let extraError = #expect(throws: ModelError.self) { _ = try LlamaModel(huggingFaceDirectory: extra) }
        #expect(extraError?.kind == .unexpectedTensor("model.layers.0.mlp.extra.weight"))
        // A tied checkpoint may carry lm_head.weight (transformers ignores it), as may old rotary tables.
        let tolerated = try directory("tolerated", dropping: nil, adding: "model.layers.0.self_attn.rotary_emb.inv_freq")
        _ = try LlamaModel(huggingFaceDirectory: tolerated)

        // Destinations: a non-empty directory is refused and left alone; quantized HF weights are refused.
        let gguf = work + "/m.gguf"
        try ModelConversion.convertHuggingFaceToGGUF(directory: tiny.directory, path: gguf)
        let file = try GGUFFile(path: gguf)
        #expect(throws: ConversionError.self) { try ModelConversion.convertGGUFToHuggingFace(file, directory: missing) }
        #expect(try listDirectory(missing) == ["config.json", "model.safetensors"])
        #expect(throws: ConversionError.self) {
            try ModelConversion.convertGGUFToHuggingFace(file, directory: work + "/q", dtype: .q8_0)
        }
        #expect(!fileExists(work + "/q"))
        #expect(try listDirectory(work).allSatisfy { !$0.contains(".tmp-") })
        // Without a tokenizer.json there is nothing to convert to GGUF.
        #expect(throws: ConversionError.self) {
            try ModelConversion.convertHuggingFaceToGGUF(directory: missing, path: work + "/x.gguf")
        }
        #expect(!fileExists(work + "/x.gguf"))
    }

    // MARK: - The default model

    #if DEBUG
    static let optimized = false
    #else
    static let optimized = true
    #endif

    /// Converts 135M parameters three times (about 15 s optimized, far longer unoptimized): release only.
    @Test(.enabled(if: TestSupport.defaultModelPath != nil, "default model not fetched (Tools/scripts/bootstrap.sh)"),
          .enabled(if: optimized, "runs in release builds only (the test suite's model-heavy tests run in release)"))
    func defaultModelConvertsExactlyAndMatchesTransformers() throws {
        let original = try GGUFFile(path: TestSupport.defaultModelPath!)
        let ggufModel = try LlamaModel(gguf: original)
        let work = TestSupport.temporaryDirectory("hf-default")
        defer { Self.removeTree(work) }
        let directory = work + "/smollm2"

        // GGUF (Q4_1) → HF f32: exact weights, so the same logits up to summation order in attention.
        try ModelConversion.convertGGUFToHuggingFace(original, directory: directory, dtype: .f32, threads: 2)
        let hfModel = try LlamaModel(huggingFaceDirectory: directory)
        let fixture = try JSON.parse(try readFile(TestSupport.fixture("hf/smollm2-transformers.json")))
        let ids = try #require(fixture["ids"]?.arrayValue).map { Int32($0.intValue!) }
        let prompts: [[Int32]] = [ids, [504, 3575, 282, 4649, 314, 253, 1345, 6484, 28, 665, 253, 1165, 2030]]
        let V = ggufModel.config.vocabSize
        var fromGGUF: [[Float]] = []
        for prompt in prompts {
            let a = try Self.logits(ggufModel, prompt), b = try Self.logits(hfModel, prompt)
            fromGGUF.append(a)
            let diff = TestSupport.maxAbsDiff(a, b)
            print("default model, \(prompt.count) tokens: GGUF vs converted directory: max abs diff \(diff)")
            #expect(diff <= 1e-3, "GGUF vs converted directory: max abs diff \(diff)")
        }
        // transformers on the converted directory (top-32 of every position).
        let hfLogits = try Self.logits(hfModel, ids)
        var worst: Float = 0
        for (t, position) in try #require(fixture["positions"]?.arrayValue).enumerated() {
            let top = try #require(position["top_ids"]?.arrayValue).map { Int($0.intValue!) }
            let values = try #require(position["top_values"]?.arrayValue).map { Float($0.doubleValue!) }
            for (i, id) in top.enumerated() {
                worst = max(worst, abs(fromGGUF[0][t * V + id] - values[i]), abs(hfLogits[t * V + id] - values[i]))
            }
        }
        print("default model: transformers top-32 vs ours (GGUF and directory): max abs diff \(worst)")
        #expect(worst <= 1e-3, "transformers vs ours: max abs diff \(worst)")

        // HF → GGUF Q4_1: re-quantizing the dequantized Q4_1 weights gives the original blocks back.
        try ModelConversion.convertHuggingFaceToGGUF(directory: directory, path: work + "/q4_1.gguf", type: .q4_1, threads: 2)
        let roundTrip = try GGUFFile(path: work + "/q4_1.gguf")
        #expect(roundTrip.tensors.count == original.tensors.count)
        var differing: [String] = []
        for info in original.tensors {
            guard let other = roundTrip.tensor(named: info.name), other.type == info.type, other.shape == info.shape,
                  original.data(for: info).elementsEqual(roundTrip.data(for: other)) else {
                differing.append(info.name)
                continue
            }
        }
        #expect(differing.isEmpty, "tensors differing after GGUF → HF → GGUF: \(differing.prefix(5))")
        for key in ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                    "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                    "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token",
                    "tokenizer.chat_template", "general.name", "general.file_type", "llama.context_length",
                    "llama.embedding_length", "llama.block_count", "llama.feed_forward_length", "llama.attention.head_count",
                    "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon",
                    "llama.vocab_size", "llama.rope.dimension_count"] {
            #expect(roundTrip.value(forKey: key) == original.value(forKey: key), "\(key)")
        }
        unlink(work + "/q4_1.gguf")

        // HF → GGUF Q8_0 stays close to the exact weights.
        try ModelConversion.convertHuggingFaceToGGUF(directory: directory, path: work + "/q8_0.gguf", type: .q8_0, threads: 2)
        let q8 = try LlamaModel(gguf: try GGUFFile(path: work + "/q8_0.gguf"))
        let (kl, agree) = Self.klAndAgreement(fromGGUF[0], try Self.logits(q8, ids), vocab: V)
        print("default model: HF → GGUF Q8_0 vs exact: max KL \(kl), top-1 agreement \(agree)")
        #expect(kl <= 0.02 && agree >= 0.9, "Q8_0: max KL \(kl), top-1 agreement \(agree)")
    }
}
