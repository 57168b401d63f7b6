import GGUF
import Quants
import Safetensors
import TensorIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The readers and writers behind `PromptConversion`, one per foreign format.

/// Safetensors metadata keys under which our writers keep what the bare tensor cannot hold.
enum SidecarKeys {
    static let name = "sprompt.name"
    static let template = "sprompt.template"
    static let provenance = "sprompt.provenance"
    static let metrics = "sprompt.metrics"
    static let model = "sprompt.model"
    static let metadata = "sprompt.metadata"

    /// The metadata strings for one prompt of `file`.
    static func strings(_ prompt: SoftPrompt, of file: PromptFile, path: String) throws(PromptConversionError) -> [String: String] {
        var out = [name: prompt.name]
        if let text = prompt.template { out[template] = text }
        if !prompt.provenance.isEmpty { out[provenance] = PromptConversion.serialize(.object(prompt.provenance)) }
        if !prompt.metrics.isEmpty { out[metrics] = PromptConversion.serialize(.object(prompt.metrics)) }
        if !file.metadata.isEmpty { out[metadata] = PromptConversion.serialize(.object(file.metadata)) }
        if let model = file.model { out[self.model] = PromptConversion.serialize(try PromptConversion.fingerprintJSON(model, path: path)) }
        return out
    }

    /// Applies the metadata strings to a prompt read from the tensor; returns the fingerprint and file metadata.
    static func apply(_ strings: [String: String], to prompt: inout SoftPrompt,
                      path: String) throws(PromptConversionError) -> (ModelFingerprint?, JSONObject) {
        if let value = strings[name] {
            if let problem = PromptName.problem(value) { throw PromptConversionError(path, "\(name) \(problem)") }
            prompt.name = value
        }
        if let value = strings[template] {
            guard PromptTemplate.isValid(value) else { throw PromptConversionError(path, "\(template) lacks {input}") }
            prompt.template = value
        }
        if let value = strings[provenance] { prompt.provenance = try PromptConversion.parseObject(value, provenance, path: path) }
        if let value = strings[metrics] { prompt.metrics = try PromptConversion.parseObject(value, metrics, path: path) }
        let fileMetadata = try strings[metadata].map { (v) throws(PromptConversionError) in
            try PromptConversion.parseObject(v, metadata, path: path)
        } ?? [:]
        let fingerprint = try strings[model].map { (v) throws(PromptConversionError) in
            try PromptConversion.fingerprint(.object(try PromptConversion.parseObject(v, model, path: path)), path: path)
        }
        return (fingerprint, fileMetadata)
    }
}

// MARK: - Safetensors with one tensor

enum SingleTensor {
    static func dtype(_ prompt: PromptDType) -> SafetensorsDType {
        switch prompt { case .f32: .f32; case .f16: .f16; case .bf16: .bf16 }
    }

    /// The file's bytes: tensor `prompt_embeddings` in the prompt's dtype, the rest in the metadata.
    static func encode(_ file: PromptFile, extraMetadata: [String: String] = [:], path: String = "") throws(PromptConversionError) -> [UInt8] {
        let prompt = file.prompts[0]
        var metadata = try SidecarKeys.strings(prompt, of: file, path: path)
        metadata.merge(extraMetadata) { _, new in new }
        var writer = SafetensorsWriter(metadata: metadata)
        do {
            try writer.add(PromptConversion.tensorName, dtype: dtype(prompt.dtype), shape: [prompt.tokens, prompt.width],
                           bytes: PromptConversion.encodeValues(prompt.vectors, as: prompt.dtype))
            return try writer.serialize()
        } catch { throw PromptConversionError(path, "\(error)") }
    }

    /// Reads a file holding one float tensor `[tokens, width]` (or several, one named `prompt_embeddings`).
    static func read(_ bytes: [UInt8], path: String, fallbackName: String? = nil) throws(PromptConversionError) -> PromptFile {
        let file: SafetensorsFile
        do { file = try SafetensorsFile(bytes: bytes, name: path) } catch { throw PromptConversionError(path, error.message) }
        let info: SafetensorsTensorInfo
        if let named = file.tensor(named: PromptConversion.tensorName) {
            info = named
        } else if file.tensors.count == 1 {
            info = file.tensors[0]
        } else {
            throw PromptConversionError(path, "expected one tensor (or one named \(PromptConversion.tensorName)); found "
                                  + "\(file.tensors.count): \(file.tensors.prefix(8).map(\.name).joined(separator: ", "))")
        }
        let dtype: PromptDType
        switch info.dtype {
        case .f32, .f64: dtype = .f32
        case .f16: dtype = .f16
        case .bf16: dtype = .bf16
        default: throw PromptConversionError(path, "tensor '\(info.name)' is \(info.dtype.rawValue); a prompt is F32, F16, BF16 or F64")
        }
        guard info.shape.count == 2 else {
            throw PromptConversionError(path, "tensor '\(info.name)' has shape \(info.shape); a prompt is [tokens, width]")
        }
        let values: [Float]
        do { values = try file.floats(for: info) } catch { throw PromptConversionError(path, error.message) }
        let base = fallbackName ?? PromptConversion.baseName(path, dropping: ".safetensors")
        var prompt = try PromptConversion.makePrompt(name: base, values: values, tokens: info.shape[0], width: info.shape[1],
                                                     dtype: dtype, path: path)
        let (model, metadata) = try SidecarKeys.apply(file.metadataDictionary, to: &prompt, path: path)
        try PromptConversion.checkWidth(prompt, against: model, path: path)
        return PromptFile(model: model, prompts: [prompt], metadata: metadata)
    }
}

// MARK: - PEFT adapter directories

enum PEFTAdapter {
    static let configName = "adapter_config.json"
    static let weightsName = "adapter_model.safetensors"
    static let pickleName = "adapter_model.bin"
    /// Config fields copied into the prompt's provenance (under `"peft"`).
    static let recordedKeys = ["peft_type", "peft_version", "base_model_name_or_path", "revision", "task_type",
                               "num_layers", "num_attention_heads", "prompt_tuning_init", "prompt_tuning_init_text",
                               "tokenizer_name_or_path", "encoder_reparameterization_type", "encoder_hidden_size"]

    static func read(directory: String) throws(PromptConversionError) -> PromptFile {
        let configPath = directory + "/" + configName
        let weightsPath = directory + "/" + weightsName
        guard fileExists(configPath) else { throw PromptConversionError(directory, "no \(configName): not a PEFT adapter directory") }
        let config = try PromptConversion.parseObject(
            String(decoding: try PromptConversion.load(configPath), as: UTF8.self), configName, path: configPath)
        let type = config["peft_type"]?.stringValue ?? "(none)"
        switch type {
        case "PROMPT_TUNING", "P_TUNING": break
        case "PREFIX_TUNING":
            throw PromptConversionError(configPath, "PREFIX_TUNING stores per-layer key/value prefixes, not input embeddings; it has no soft-prompt equivalent")
        default:
            throw PromptConversionError(configPath, "peft_type \(type) is not a soft prompt (PROMPT_TUNING and P_TUNING are read)")
        }
        guard fileExists(weightsPath) else {
            if fileExists(directory + "/" + pickleName) {
                throw PromptConversionError(directory, "only \(pickleName) (a torch pickle) is present; pickles can run code when loaded, "
                                      + "so they are not read. Re-save the adapter with safe_serialization=True (PEFT's default)")
            }
            throw PromptConversionError(directory, "no \(weightsName)")
        }
        func integer(_ key: String) throws(PromptConversionError) -> Int {
            guard let v = config[key]?.intValue, v > 0, v <= Int64(PromptFile.maxDimension) else {
                throw PromptConversionError(configPath, "\(key) is missing or not a positive integer")
            }
            return Int(v)
        }
        let virtualTokens = try integer("num_virtual_tokens")
        let tokenDim = try integer("token_dim")
        let submodules = config["num_transformer_submodules"]?.intValue ?? 1
        guard submodules == 1 else {
            throw PromptConversionError(configPath, "num_transformer_submodules is \(submodules) (an encoder-decoder adapter); "
                                  + "only decoder-only adapters (1) are read")
        }
        var file = try SingleTensor.read(try PromptConversion.load(weightsPath), path: weightsPath,
                                         fallbackName: PromptConversion.baseName(directory))
        let prompt = file.prompts[0]
        guard prompt.tokens == virtualTokens, prompt.width == tokenDim else {
            throw PromptConversionError(weightsPath, "prompt_embeddings is [\(prompt.tokens), \(prompt.width)]; the config says "
                                  + "num_virtual_tokens \(virtualTokens), token_dim \(tokenDim)")
        }
        var recorded = JSONObject()
        for key in recordedKeys { if let value = config[key], !value.isNull { recorded[key] = value } }
        file.prompts[0].provenance["peft"] = .object(recorded)
        return file
    }

    static func write(_ file: PromptFile, directory: String, options: PromptConversion.PEFTOptions) throws(PromptConversionError) {
        let prompt = file.prompts[0]
        let previous = prompt.provenance["peft"]?.objectValue ?? [:]
        func known(_ key: String) -> JSONValue { previous[key].flatMap { $0.isNull ? nil : $0 } ?? .null }
        let layers: JSONValue = file.model.map { .int(Int64($0.layerCount)) } ?? known("num_layers")
        let heads: JSONValue = options.attentionHeads.map { .int(Int64($0)) } ?? known("num_attention_heads")
        let base: JSONValue = options.baseModel.map { .string($0) } ?? known("base_model_name_or_path")
        // Keys in PEFT's order (it writes them sorted). The embeddings are final values: PROMPT_TUNING
        // with inference_mode, RANDOM init (so that loading needs no tokenizer).
        let config: JSONObject = [
            "auto_mapping": .null,
            "base_model_name_or_path": base,
            "inference_mode": true,
            "modules_to_save": .null,
            "num_attention_heads": heads,
            "num_layers": layers,
            "num_transformer_submodules": 1,
            "num_virtual_tokens": .int(Int64(prompt.tokens)),
            "peft_type": "PROMPT_TUNING",
            "prompt_tuning_init": "RANDOM",
            "prompt_tuning_init_text": .null,
            "revision": known("revision"),
            "task_type": "CAUSAL_LM",
            "token_dim": .int(Int64(prompt.width)),
            "tokenizer_kwargs": .null,
            "tokenizer_name_or_path": .null,
        ]
        let text: String
        do { text = try JSON.serialize(.object(config), pretty: true) } catch { throw PromptConversionError(directory, "\(error)") }
        let weights = try SingleTensor.encode(file, extraMetadata: ["format": "pt"], path: directory)
        try writeDirectory(directory, files: [(weightsName, weights), (configName, Array(text.utf8) + [0x0A])])
    }

    /// Writes the adapter's files so that a kill leaves each of them old or new, never torn: both are
    /// written and fsynced in a `TemporaryDirectory` beside `directory` first. A missing (or empty)
    /// directory is then created whole by renaming the temporary one (absent or complete); in an
    /// existing directory the files are renamed over the old ones one after the other, so the only
    /// mixed state (new weights, old config) spans two rename calls.
    static func writeDirectory(_ directory: String, files: [(name: String, bytes: [UInt8])]) throws(PromptConversionError) {
        var trimmed = directory
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        do {
            if let slash = trimmed.lastIndex(of: "/"), slash != trimmed.startIndex {
                let parent = String(trimmed[..<slash])
                if !isDirectory(parent) { try makeDirectories(parent) }
            }
            let scratch = try TemporaryDirectory(beside: trimmed)
            defer { scratch.remove() }
            for file in files { try AtomicFile.write(to: scratch.path + "/" + file.name, bytes: file.bytes) }
            let empty = isDirectory(trimmed) && ((try? listDirectory(trimmed))?.isEmpty ?? false)
            if !fileExists(trimmed) || empty {
                try scratch.commit(to: trimmed)
                return
            }
            guard isDirectory(trimmed) else { throw PromptConversionError(trimmed, "exists and is not a directory") }
            for file in files {
                if rename(scratch.path + "/" + file.name, trimmed + "/" + file.name) != 0 {
                    throw FileError(operation: "rename into \(trimmed)", path: scratch.path + "/" + file.name, errno: errno)
                }
            }
            syncDirectoryItself(trimmed)
        } catch let error as PromptConversionError {
            throw error
        } catch {
            throw PromptConversionError(trimmed, "\(error)")
        }
    }
}

// MARK: - GGUF adapters

enum GGUFAdapter {
    static let prefix = "adapter.soft_prompt."
    static let formatVersion: UInt32 = 1

    static func encode(_ file: PromptFile, path: String = "") throws(PromptConversionError) -> [UInt8] {
        let prompt = file.prompts[0]
        var writer = GGUFWriter()
        do {
            if let model = file.model { try writer.addMetadata("general.architecture", .string(GGUFString(model.architecture))) }
            try writer.addMetadata("general.type", .string("adapter"))
            try writer.addMetadata("general.name", .string(GGUFString(prompt.name)))
            try writer.addMetadata("adapter.type", .string("soft_prompt"))
            try writer.addMetadata(prefix + "version", .uint32(formatVersion))
            try writer.addMetadata(prefix + "placement", .string(GGUFString(prompt.placement.rawValue)))
            if let template = prompt.template { try writer.addMetadata(prefix + "template", .string(GGUFString(template))) }
            if !prompt.provenance.isEmpty {
                try writer.addMetadata(prefix + "provenance", .string(GGUFString(PromptConversion.serialize(.object(prompt.provenance)))))
            }
            if !prompt.metrics.isEmpty {
                try writer.addMetadata(prefix + "metrics", .string(GGUFString(PromptConversion.serialize(.object(prompt.metrics)))))
            }
            if !file.metadata.isEmpty {
                try writer.addMetadata(prefix + "file_metadata", .string(GGUFString(PromptConversion.serialize(.object(file.metadata)))))
            }
            if let model = file.model {
                _ = try PromptConversion.fingerprintJSON(model, path: path)  // validates the fingerprint
                try writer.addMetadata(prefix + "model.embedding_length", .uint32(UInt32(model.embeddingLength)))
                try writer.addMetadata(prefix + "model.layer_count", .uint32(UInt32(model.layerCount)))
                try writer.addMetadata(prefix + "model.vocab_size", .uint32(UInt32(model.vocabSize)))
                if let hash = model.tokenizerHash { try writer.addMetadata(prefix + "model.tokenizer_sha256", .string(GGUFString(hash))) }
                if let sketch = model.sketch, let norms = model.sketchNorms, let hash = model.weightsHash {
                    try writer.addMetadata(prefix + "model.sketch_version", .uint32(UInt32(model.sketchVersion)))
                    try writer.addMetadata(prefix + "model.sketch", .array(GGUFArray(sketch)))
                    try writer.addMetadata(prefix + "model.sketch_norms", .array(GGUFArray(norms)))
                    try writer.addMetadata(prefix + "model.rows_sha256", .string(GGUFString(hash)))
                }
            }
            let type: GGMLType = switch prompt.dtype { case .f32: .f32; case .f16: .f16; case .bf16: .bf16 }
            try writer.addTensor(name: PromptConversion.tensorName, type: type, shape: [prompt.width, prompt.tokens],
                                 bytes: PromptConversion.encodeValues(prompt.vectors, as: prompt.dtype))
            return try writer.serialized()
        } catch let error as PromptConversionError {
            throw error
        } catch {
            throw PromptConversionError(path, "\(error)")
        }
    }

    static func read(path: String) throws(PromptConversionError) -> PromptFile {
        let gguf: GGUFFile
        do { gguf = try GGUFFile(path: path) } catch { throw PromptConversionError(path, "\(error)") }
        guard gguf.string("general.type") == "adapter", gguf.string("adapter.type") == "soft_prompt" else {
            let found = "general.type = \(gguf.string("general.type") ?? "none"), adapter.type = \(gguf.string("adapter.type") ?? "none")"
            throw PromptConversionError(path, "not a soft-prompt adapter (\(found)); expected \"adapter\" and \"soft_prompt\"")
        }
        // A known key of another type would otherwise be skipped as if absent (a STRING "2" read as no version).
        for (key, type) in keyTypes {
            if let value = gguf[key], value.type != type {
                throw PromptConversionError(path, "\(key) is a \(value.type), not a \(type) (Formats/gguf-adapter.md)")
            }
        }
        if let version = gguf.int(prefix + "version"), version != Int(formatVersion) {
            throw PromptConversionError(path, "\(prefix)version \(version) is not supported (1 is)")
        }
        if let placement = gguf.string(prefix + "placement"), placement != PromptPlacement.prefix.rawValue {
            throw PromptConversionError(path, "placement '\(placement)' is not supported (prefix is)")
        }
        guard gguf.tensors.count == 1, let info = gguf.tensor(named: PromptConversion.tensorName) else {
            throw PromptConversionError(path, "expected exactly one tensor named \(PromptConversion.tensorName); found "
                                  + gguf.tensors.prefix(8).map(\.name).joined(separator: ", "))
        }
        let dtype: PromptDType
        switch info.type {
        case .f32: dtype = .f32
        case .f16: dtype = .f16
        case .bf16: dtype = .bf16
        default: throw PromptConversionError(path, "tensor type \(info.type) is not F32, F16 or BF16")
        }
        guard info.shape.count == 2 else { throw PromptConversionError(path, "tensor shape \(info.shape) is not [width, tokens]") }
        let width = info.shape[0], tokens = info.shape[1]
        let values = PayloadCodec.decode(gguf.data(for: info), offset: 0, count: info.elementCount, as: dtype)
        var prompt = try PromptConversion.makePrompt(name: gguf.string("general.name") ?? PromptConversion.baseName(path, dropping: ".gguf"),
                                                     values: values, tokens: tokens, width: width, dtype: dtype, path: path)
        if let template = gguf.string(prefix + "template") {
            guard PromptTemplate.isValid(template) else { throw PromptConversionError(path, "\(prefix)template lacks {input}") }
            prompt.template = template
        }
        if let text = gguf.string(prefix + "provenance") { prompt.provenance = try PromptConversion.parseObject(text, "provenance", path: path) }
        if let text = gguf.string(prefix + "metrics") { prompt.metrics = try PromptConversion.parseObject(text, "metrics", path: path) }
        let metadata = try gguf.string(prefix + "file_metadata").map { (text) throws(PromptConversionError) in
            try PromptConversion.parseObject(text, "file_metadata", path: path)
        } ?? [:]
        let model = try fingerprint(gguf, path: path)
        try PromptConversion.checkWidth(prompt, against: model, path: path)
        return PromptFile(model: model, prompts: [prompt], metadata: metadata)
    }

    /// The type of each key of Formats/gguf-adapter.md section 1.
    static let keyTypes: [(String, GGUFValueType)] = [
        ("general.type", .string), ("adapter.type", .string), (prefix + "version", .uint32), (prefix + "placement", .string),
        ("general.name", .string), (prefix + "template", .string), (prefix + "provenance", .string),
        (prefix + "metrics", .string), (prefix + "file_metadata", .string), ("general.architecture", .string),
        (prefix + "model.embedding_length", .uint32), (prefix + "model.layer_count", .uint32),
        (prefix + "model.vocab_size", .uint32), (prefix + "model.tokenizer_sha256", .string),
        (prefix + "model.sketch_version", .uint32), (prefix + "model.sketch", .array),
        (prefix + "model.sketch_norms", .array), (prefix + "model.rows_sha256", .string),
    ]

    /// The fingerprint from the `model.*` keys, validated as `.sprompt` validates its `model` object.
    static func fingerprint(_ gguf: GGUFFile, path: String) throws(PromptConversionError) -> ModelFingerprint? {
        let key = prefix + "model."
        guard let architecture = gguf.string("general.architecture") else { return nil }
        guard let width = gguf.int(key + "embedding_length"), let layers = gguf.int(key + "layer_count"),
              let vocab = gguf.int(key + "vocab_size") else {
            throw PromptConversionError(path, "general.architecture is set but \(key)embedding_length, layer_count or vocab_size is missing")
        }
        var object: JSONObject = ["architecture": .string(architecture), "embedding_length": .int(Int64(width)),
                                  "layer_count": .int(Int64(layers)), "vocab_size": .int(Int64(vocab))]
        if let hash = gguf.string(key + "tokenizer_sha256") { object["tokenizer_sha256"] = .string(hash) }
        if let version = gguf.int(key + "sketch_version") {
            guard let sketch = gguf.array(key + "sketch")?.values(as: Double.self),
                  let norms = gguf.array(key + "sketch_norms")?.values(as: Double.self),
                  let hash = gguf.string(key + "rows_sha256") else {
                throw PromptConversionError(path, "\(key)sketch_version is set but sketch, sketch_norms (FLOAT64 arrays) or rows_sha256 is missing")
            }
            object["weights"] = .object(["sketch_version": .int(Int64(version)), "sketch": .array(sketch.map { .double($0) }),
                                         "norms": .array(norms.map { .double($0) }), "rows_sha256": .string(hash)])
        }
        let fingerprint = try PromptConversion.fingerprint(.object(object), path: path)
        return fingerprint
    }
}

// MARK: - NumPy

enum NumPyPrompts {
    static func prompt(named name: String, npy bytes: [UInt8], path: String) throws(PromptConversionError) -> SoftPrompt {
        let array: NPY.Array
        do {
            array = try bytes.withUnsafeBytes { raw in try NPY.decode(raw, path: path, limit: PromptFile.maxPayloadSize) }
        } catch { throw PromptConversionError(path, "\(error)") }
        guard array.shape.count == 2, let values = array.floats() else {
            throw PromptConversionError(path, "'\(name)' is \(array.dtype.rawValue) \(array.shape); a prompt is a float32/float16 "
                                  + "[tokens, width] array")
        }
        return try PromptConversion.makePrompt(name: name, values: values, tokens: array.shape[0], width: array.shape[1],
                                               dtype: array.dtype == .f16 ? .f16 : .f32, path: path)
    }

    static func encode(_ prompt: SoftPrompt, path: String) throws(PromptConversionError) -> [UInt8] {
        let dtype: NPY.DType
        switch prompt.dtype {
        case .f32: dtype = .f32
        case .f16: dtype = .f16
        case .bf16: throw PromptConversionError(path, "NumPy has no bfloat16 type; write f32 or f16 (--dtype)")
        }
        let data = PromptConversion.encodeValues(prompt.vectors, as: prompt.dtype)
        return data.withUnsafeBytes { NPY.encode(dtype: dtype, shape: [prompt.tokens, prompt.width], data: $0) }
    }

    static func readArchive(_ bytes: [UInt8], path: String) throws(PromptConversionError) -> PromptFile {
        let members: [StoredZip.Member]
        let result: Result<[StoredZip.Member], StoredZip.Failure> = bytes.withUnsafeBytes { raw in
            Result { () throws(StoredZip.Failure) in try StoredZip.decode(raw) }
        }
        do { members = try result.get() } catch { throw PromptConversionError(path, "at byte \(error.offset): \(error.message)") }
        guard !members.isEmpty else { throw PromptConversionError(path, "the archive is empty") }
        var prompts: [SoftPrompt] = []
        for member in members {
            guard member.name.hasSuffix(".npy"), member.name.count > 4 else {
                throw PromptConversionError(path, "member '\(member.name)' is not a .npy array")
            }
            let name = String(member.name.dropLast(4))
            prompts.append(try prompt(named: name, npy: member.data, path: path + ":" + member.name))
        }
        return PromptFile(model: nil, prompts: prompts)
    }

    static func encodeArchive(_ prompts: [SoftPrompt], path: String) throws(PromptConversionError) -> [UInt8] {
        var members: [StoredZip.Member] = []
        for prompt in prompts {
            members.append(StoredZip.Member(name: prompt.name + ".npy", data: try encode(prompt, path: path)))
        }
        do { return try StoredZip.encode(members) } catch { throw PromptConversionError(path, error.message) }
    }
}
