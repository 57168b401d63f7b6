import GGUF
import Llama
import Safetensors
import SoftPrompt
import TensorIO
import TestSupport
import Testing
import Tokenizers

/// A prompt with every field set, and a synthetic fingerprint of matching width.
private func samplePrompt(tokens: Int = 5, width: Int = 8, dtype: PromptDType = .f32, seed: UInt64 = 1) -> PromptFile {
    var rng = SplitMix64(seed: seed)
    let values = (0 ..< tokens * width).map { _ in Float(rng.nextFloat()) * 3 }
    let prompt = SoftPrompt(name: "name-language", vectors: values, width: width, dtype: dtype,
                            template: "Name: {input}\nLanguage:", provenance: ["steps": 60, "init": "text"],
                            metrics: ["accuracy": 0.75])
    let model = ModelFingerprint(architecture: "llama", embeddingLength: width, layerCount: 3, vocabSize: 100,
                                 tokenizerHash: String(repeating: "ab", count: 32), sketch: [1.5, -2.25], sketchNorms: [3, 4],
                                 weightsHash: String(repeating: "0f", count: 32))
    return PromptFile(model: model, prompts: [prompt], metadata: ["note": "test"])
}

/// The values a prompt holds once stored in `dtype` (rounding is idempotent, so one rounding is final).
private func rounded(_ values: [Float], _ dtype: PromptDType) -> [Float] {
    switch dtype {
    case .f32: values
    case .f16: values.map { HalfFloat.f16ToFloat(HalfFloat.floatToF16($0)) }
    case .bf16: values.map { HalfFloat.bf16ToFloat(HalfFloat.floatToBF16($0)) }
    }
}

private func path(in directory: String, _ format: PromptFormat) -> String {
    switch format {
    case .peft: directory + "/adapter-" + format.rawValue
    default: directory + "/prompt-" + format.rawValue + "." + format.rawValue
    }
}

/// Formats that keep name, template, provenance, metrics and the fingerprint.
private let lossless: Set<PromptFormat> = [.sprompt, .gguf, .safetensors, .peft]

@Suite struct RoundTrips {
    @Test(arguments: PromptDType.allCases)
    func everyPairPreservesValues(dtype: PromptDType) throws {
        let source = samplePrompt(dtype: dtype)
        let want = rounded(source.prompts[0].vectors, dtype)
        #expect(dtype == .f32 ? want == source.prompts[0].vectors : want != source.prompts[0].vectors)
        let dir = TestSupport.temporaryDirectory("convert")
        let formats = PromptFormat.allCases.filter { dtype != .bf16 || ($0 != .npy && $0 != .npz) }
        for first in formats {
            for second in formats {
                let a = path(in: dir, first), b = path(in: dir, second) + "-2"
                try PromptConversion.write(source, to: a, format: first)
                let middle = try PromptConversion.read(path: a, format: first)
                try PromptConversion.write(middle, to: b, format: second)
                let back = try PromptConversion.read(path: b, format: second)
                let label = "\(first.rawValue) → \(second.rawValue) (\(dtype.rawValue))"
                #expect(back.prompts.count == 1, "\(label)")
                let prompt = back.prompts[0]
                #expect(prompt.tokens == 5 && prompt.width == 8, "\(label)")
                #expect(prompt.vectors == want, "\(label): max diff \(TestSupport.maxAbsDiff(prompt.vectors, want))")
                #expect(prompt.dtype == dtype, "\(label)")
                if lossless.contains(first) && lossless.contains(second) {
                    #expect(prompt.name == "name-language", "\(label)")
                    #expect(prompt.template == source.prompts[0].template, "\(label)")
                    #expect(prompt.metrics == source.prompts[0].metrics, "\(label)")
                    #expect(back.model == source.model, "\(label)")
                    // PEFT adds what it read from adapter_config.json under "peft".
                    var provenance = prompt.provenance
                    provenance["peft"] = nil
                    #expect(provenance == source.prompts[0].provenance, "\(label)")
                } else {
                    #expect(back.model == nil, "\(label): the fingerprint cannot survive \(first) or \(second)")
                    #expect(prompt.template == nil || lossless.contains(first) && lossless.contains(second), "\(label)")
                }
            }
        }
    }

    @Test func storedBytesAreTheDtype() throws {
        // The tensor a GGUF and a safetensors file hold is the prompt in its dtype, ggml shape [width, tokens].
        let dir = TestSupport.temporaryDirectory("convert")
        let source = samplePrompt(dtype: .bf16)
        try PromptConversion.write(source, to: dir + "/p.gguf")
        let gguf = try GGUFFile(path: dir + "/p.gguf")
        #expect(gguf.string("general.type") == "adapter")
        #expect(gguf.string("adapter.type") == "soft_prompt")
        #expect(gguf.string("general.architecture") == "llama")
        let info = try #require(gguf.tensor(named: "prompt_embeddings"))
        #expect(info.type == .bf16 && info.shape == [8, 5])
        try PromptConversion.write(source, to: dir + "/p.safetensors")
        let st = try SafetensorsFile(path: dir + "/p.safetensors")
        #expect(st.tensors.map(\.name) == ["prompt_embeddings"])
        #expect(st.tensors[0].dtype == .bf16 && st.tensors[0].shape == [5, 8])
        #expect(try st.floats(named: "prompt_embeddings") == rounded(source.prompts[0].vectors, .bf16))
    }

    @Test func banksThroughNpzAndSprompt() throws {
        let dir = TestSupport.temporaryDirectory("convert")
        var bank = samplePrompt()
        var second = samplePrompt(seed: 2).prompts[0]
        second.name = "other"
        bank.prompts.append(second)
        try PromptConversion.write(bank, to: dir + "/bank.npz")
        let back = try PromptConversion.read(path: dir + "/bank.npz")
        #expect(back.prompts.map(\.name) == ["name-language", "other"])
        #expect(back.prompts.map(\.vectors) == bank.prompts.map(\.vectors))
        #expect(throws: PromptConversionError.self) { try PromptConversion.write(bank, to: dir + "/one.gguf") }
    }

    @Test func detection() {
        #expect(PromptFormat.detect(path: "a/b.SPROMPT") == .sprompt)
        #expect(PromptFormat.detect(path: "x.npz") == .npz)
        #expect(PromptFormat.detect(path: "x.safetensors") == .safetensors)
        #expect(PromptFormat.detect(path: "out/") == .peft)
        #expect(PromptFormat.detect(path: "x.bin") == nil)
        #expect(PromptFormat.detect(path: "/nonexistent/adapter") == .peft)
    }
}

@Suite struct ForeignFiles {
    static func expected() throws -> JSONObject {
        try #require(try JSON.parse(readFile(TestSupport.fixture("convert/expected.json"))).objectValue)
    }

    static func floats(_ value: JSONValue?) -> [Float] {
        (value?.arrayValue ?? []).map { Float($0.doubleValue ?? Double($0.intValue ?? 0)) }
    }

    @Test func numpySavez() throws {
        let file = try PromptConversion.read(path: TestSupport.fixture("convert/numpy_savez.npz"))
        let expected = try Self.expected()["npz"]
        #expect(file.prompts.map(\.name) == ["alpha", "beta"])
        #expect(file.prompts[0].vectors == Self.floats(expected?["alpha"]?["values"]))
        #expect(file.prompts[0].dtype == .f32 && file.prompts[0].width == 3)
        #expect(file.prompts[1].vectors == Self.floats(expected?["beta"]?["values"]))
        #expect(file.prompts[1].dtype == .f16 && file.prompts[1].width == 4)
        #expect(file.model == nil)
    }

    @Test func deflatedNpzIsRefused() throws {
        let error = #expect(throws: PromptConversionError.self) {
            try PromptConversion.read(path: TestSupport.fixture("convert/numpy_savez_compressed.npz"))
        }
        #expect(error?.message.contains("savez_compressed") == true)
    }

    @Test func corruptNpzIsRefused() throws {
        var bytes = try readFile(TestSupport.fixture("convert/numpy_savez.npz"))
        // Flip one data byte of the first member (its header says where the data starts).
        let nameLength = Int(bytes[26]) | Int(bytes[27]) << 8, extraLength = Int(bytes[28]) | Int(bytes[29]) << 8
        bytes[30 + nameLength + extraLength + 100] ^= 1
        let path = try TestSupport.temporaryFile(bytes, name: "bad.npz")
        let error = #expect(throws: PromptConversionError.self) { try PromptConversion.read(path: path) }
        #expect(error?.message.contains("CRC-32") == true)
        let truncated = try TestSupport.temporaryFile(Array(bytes.prefix(bytes.count - 30)), name: "short.npz")
        #expect(throws: PromptConversionError.self) { try PromptConversion.read(path: truncated) }
    }

    @Test func pTuningStoresTheEncoderOutput() throws {
        let file = try PromptConversion.read(path: TestSupport.fixture("convert/ptuning"))
        let expected = try Self.expected()["ptuning"]
        let prompt = file.prompts[0]
        #expect(prompt.tokens == 4 && prompt.width == 16)
        #expect(prompt.vectors == Self.floats(expected?["encoder_output"]))
        #expect(prompt.vectors != Self.floats(expected?["encoder_input"]))
        #expect(prompt.provenance["peft"]?["peft_type"]?.stringValue == "P_TUNING")
        #expect(file.model == nil)
    }

    @Test func pickleOnlyAdapterIsRefused() throws {
        let error = #expect(throws: PromptConversionError.self) {
            try PromptConversion.read(path: TestSupport.fixture("convert/pickle_only"))
        }
        #expect(error?.message.contains("pickle") == true)
    }

    @Test func otherPeftTypesAreRefused() throws {
        let dir = TestSupport.temporaryDirectory("convert")
        try PromptConversion.write(samplePrompt(), to: dir + "/a", format: .peft)
        var config = try readFile(dir + "/a/adapter_config.json")
        let text = String(decoding: config, as: UTF8.self).replacing("\"PROMPT_TUNING\"", with: "\"PREFIX_TUNING\"")
        config = Array(text.utf8)
        try AtomicFile.write(to: dir + "/a/adapter_config.json", bytes: config)
        let error = #expect(throws: PromptConversionError.self) { try PromptConversion.read(path: dir + "/a") }
        #expect(error?.message.contains("PREFIX_TUNING") == true)
    }

    @Test func ggufWrittenByGGUFPy() throws {
        // An independent writer (gguf-py) following Formats/gguf-adapter.md.
        let file = try PromptConversion.read(path: TestSupport.fixture("convert/gguf_adapter.gguf"))
        let prompt = file.prompts[0]
        #expect(prompt.name == "gamma-task" && prompt.tokens == 3 && prompt.width == 4 && prompt.dtype == .f16)
        #expect(prompt.vectors == Self.floats(try Self.expected()["gguf_adapter"]?["values"]))
        #expect(prompt.template == "Q: {input}\nA:")
        #expect(prompt.provenance["by"]?.stringValue == "gguf-py")
        let model = try #require(file.model)
        #expect(model.architecture == "llama" && model.embeddingLength == 4 && model.layerCount == 2 && model.vocabSize == 64)
        #expect(model.tokenizerHash == String(repeating: "ab", count: 32) && model.sketch == nil)
    }

    @Test func safetensorsWrittenByTorch() throws {
        let file = try PromptConversion.read(path: TestSupport.fixture("convert/torch_bf16.safetensors"))
        let prompt = file.prompts[0]
        #expect(prompt.name == "torch_bf16" && prompt.dtype == .bf16 && prompt.tokens == 2 && prompt.width == 4)
        #expect(prompt.vectors == Self.floats(try Self.expected()["torch_bf16"]?["values"]))
    }

    @Test func damagedArchivesNeverCrash() throws {
        // Every truncation and every single-byte change of a numpy archive either reads or throws.
        let bytes = try readFile(TestSupport.fixture("convert/numpy_savez.npz"))
        let dir = TestSupport.temporaryDirectory("convert")
        var accepted = 0
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            try AtomicFile.write(to: dir + "/t.npz", bytes: Array(bytes.prefix(cut)))
            if (try? PromptConversion.read(path: dir + "/t.npz")) != nil { accepted += 1 }
        }
        #expect(accepted == 0)
        for position in stride(from: 0, to: bytes.count, by: 3) {
            var changed = bytes
            changed[position] ^= 0x5A
            try AtomicFile.write(to: dir + "/f.npz", bytes: changed)
            _ = try? PromptConversion.read(path: dir + "/f.npz")
        }
    }

    @Test func ggufAdapterRules() throws {
        func adapter(_ edit: (inout GGUFWriter) throws -> Void, tensor: (String, [Int]) = ("prompt_embeddings", [4, 2])) throws -> String {
            var writer = GGUFWriter()
            try writer.addMetadata("general.type", .string("adapter"))
            try writer.addMetadata("adapter.type", .string("soft_prompt"))
            try edit(&writer)
            let count = tensor.1.reduce(1, *)
            try writer.addTensor(name: tensor.0, type: .f32, shape: tensor.1, bytes: [UInt8](repeating: 0, count: 4 * count))
            return try TestSupport.temporaryFile(try writer.serialized(), name: "a.gguf")
        }
        let good = try PromptConversion.read(path: try adapter { _ in })
        #expect(good.prompts[0].tokens == 2 && good.prompts[0].width == 4 && good.model == nil)
        let cases: [(String, String)] = [
            (try adapter { try $0.addMetadata("adapter.soft_prompt.version", .uint32(2)) }, "version"),
            (try adapter { try $0.addMetadata("adapter.soft_prompt.placement", .string("suffix")) }, "placement"),
            (try adapter { try $0.addMetadata("adapter.soft_prompt.template", .string("no placeholder")) }, "{input}"),
            (try adapter { try $0.addMetadata("general.architecture", .string("llama")) }, "embedding_length"),
            (try adapter({ _ in }, tensor: ("soft_prompt.x", [4, 2])), "prompt_embeddings"),
            (try adapter({ _ in }, tensor: ("prompt_embeddings", [4, 2, 1])), "shape"),
        ]
        for (path, words) in cases {
            let error = #expect(throws: PromptConversionError.self) { try PromptConversion.read(path: path) }
            #expect(error?.message.contains(words) == true, "\(error?.message ?? "no error") should mention \(words)")
        }
    }

    @Test func ggufFromAnotherTypeIsRefused() throws {
        var writer = GGUFWriter()
        try writer.addMetadata("general.type", .string("adapter"))
        try writer.addMetadata("adapter.type", .string("lora"))
        let path = try TestSupport.temporaryFile(try writer.serialized(), name: "lora.gguf")
        let error = #expect(throws: PromptConversionError.self) { try PromptConversion.read(path: path) }
        #expect(error?.message.contains("soft_prompt") == true)
    }
}

// MARK: - Against the real PEFT

private func cosine(_ a: [Float], _ b: [Float]) -> Double {
    var dot = 0.0, na = 0.0, nb = 0.0
    for i in a.indices {
        dot += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i])
    }
    return dot / (na.squareRoot() * nb.squareRoot())
}

@Suite(.serialized) struct AgainstPEFT {
    @Test(.enabled(if: TestSupport.defaultModelPath != nil))
    func peftAdapterRunsLikePEFT() throws {
        let modelPath = try #require(TestSupport.defaultModelPath)
        let gguf = try GGUFFile(path: modelPath)
        let model = try LlamaModel(gguf: gguf)
        let tokenizer = try Tokenizer(try TokenizerVocabulary(gguf: gguf))
        let fixture = try #require(try JSON.parse(readFile(TestSupport.fixture("peft/logits.json"))).objectValue)

        // PEFT directory → .sprompt (with the model's fingerprint) → read back.
        let dir = TestSupport.temporaryDirectory("convert-peft")
        var file = try PromptConversion.read(path: TestSupport.fixture("peft/adapter"))
        #expect(file.model == nil)
        file.model = try ModelFingerprint(model: model, tokenizer: tokenizer)
        try PromptConversion.write(file, to: dir + "/nl.sprompt")
        let prompt = try PromptFile.read(path: dir + "/nl.sprompt").prompt(named: nil)
        #expect(prompt.tokens == 20 && prompt.width == model.config.hiddenSize)

        var dump: [JSONValue] = []
        for case let .object(entry) in fixture["cases"]?.arrayValue ?? [] {
            let text = try #require(entry["text"]?.stringValue)
            let ids = (entry["token_ids"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int32.init) }
            #expect(tokenizer.encode(text, addSpecial: false) == ids, "our tokenizer differs from PEFT's on \(text)")
            let at = (entry["logit_ids"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int.init) }
            let peft = ForeignFiles.floats(entry["peft_logits"])
            let base = ForeignFiles.floats(entry["base_logits"])
            let session = try InferenceSession(model: model, capacity: 64, threads: 2)
            let logits = try session.forward([.embeddings(prompt.vectors), .tokens(ids)])
            let ours = at.map { logits[$0] }
            let c = cosine(ours, peft)
            let control = cosine(base, peft)
            print("peft logits cosine \(c) (base model without the prompt: \(control)) for \(text.debugDescription)")
            #expect(c >= 0.999)
            #expect(control < c)
            let top = (entry["top10"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int.init) }
            #expect(logits.indices.max(by: { logits[$0] < logits[$1] }) == top.first)
            dump.append(.object(["text": .string(text), "logit_ids": .array(at.map { .int(Int64($0)) }),
                                 "ours": .array(ours.map { .double(Double($0)) })]))
        }
        #expect(dump.count == 3)

        // The reverse: a PEFT directory we write, for Tools/scripts/check_peft_written.py.
        if let out = environmentValue("SOFTPROMPT_CONVERT_DUMP") {
            let written = try PromptConversion.read(path: dir + "/nl.sprompt")
            try PromptConversion.write(written, to: out + "/written-peft", format: .peft,
                                       peft: .init(baseModel: modelPath, attentionHeads: model.config.numAttentionHeads))
            try AtomicFile.write(to: out + "/ours.json", bytes: Array(try JSON.serialize(.object(["cases": .array(dump)])).utf8))
        }
    }
}
