import GGUF
import Quants
import Safetensors
import TensorIO

/// A file format a soft prompt can be read from or written to.
///
/// The layouts are specified in `Formats/peft.md` (PEFT adapter directories), `Formats/gguf-adapter.md`
/// (GGUF soft-prompt adapters) and `Formats/sprompt.md`; `.npy`, `.npz` and single-tensor safetensors
/// files carry the bare `[tokens, width]` matrix.
public enum PromptFormat: String, Sendable, CaseIterable {
    /// The `.sprompt` sidecar format (one prompt or a bank).
    case sprompt
    /// A PEFT adapter directory: `adapter_config.json` + `adapter_model.safetensors` (PROMPT_TUNING, P_TUNING).
    case peft
    /// A GGUF adapter file (`general.type = "adapter"`, `adapter.type = "soft_prompt"`).
    case gguf
    /// A NumPy `.npy` array, float32 or float16, shape `[tokens, width]`.
    case npy
    /// A NumPy `.npz` archive of stored `.npy` members, one prompt per member (`NAME.npy`).
    case npz
    /// A safetensors file holding one float tensor `[tokens, width]`.
    case safetensors

    /// The format a path names: a directory is a PEFT adapter, otherwise the extension decides.
    /// - Parameter path: A file or directory (need not exist: a path ending in `/`, or whose last
    ///   component has no extension and is not an existing file, names a PEFT directory).
    /// - Returns: The format, or nil when the path says nothing.
    public static func detect(path: String) -> PromptFormat? {
        if isDirectory(path) || path.hasSuffix("/") { return .peft }
        let last = path.split(separator: "/").last ?? ""
        if !last.contains(".") && !fileExists(path) { return .peft }
        let lower = path.lowercased()
        for (suffix, format) in [(".sprompt", sprompt), (".gguf", gguf), (".npy", npy), (".npz", npz),
                                 (".safetensors", safetensors)] where lower.hasSuffix(suffix) {
            return format
        }
        return nil
    }

    /// Whether a file of this format can hold several prompts.
    public var holdsBanks: Bool { self == .sprompt || self == .npz }
}

/// Why a conversion failed: the file concerned and what is wrong with it.
public struct PromptConversionError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file or directory concerned.
    public var path: String
    /// What went wrong.
    public var message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// Reads and writes soft prompts in foreign formats, to and from `PromptFile`.
///
/// Facts a format cannot hold are lost on writing and unknown on reading: a `.npy` file keeps only
/// the values, so reading one gives a prompt with no template and `PromptFile.model == nil`. Where a
/// format has a place for free-form text (safetensors and GGUF metadata), the writer keeps the name,
/// template, provenance, metrics and model fingerprint there, so that `.sprompt` → X → `.sprompt` is
/// lossless for X = GGUF, safetensors and PEFT.
public enum PromptConversion {
    /// The tensor name written to PEFT, safetensors and GGUF files.
    public static let tensorName = "prompt_embeddings"

    /// Options for writing a PEFT adapter directory (values PEFT's config has and ours does not).
    public struct PEFTOptions: Sendable {
        /// `base_model_name_or_path`: the model the adapter belongs to (a Hub id or a path).
        public var baseModel: String?
        /// `num_attention_heads` of the base model; nil lets PEFT take it from the model's config.
        public var attentionHeads: Int?

        public init(baseModel: String? = nil, attentionHeads: Int? = nil) {
            self.baseModel = baseModel
            self.attentionHeads = attentionHeads
        }
    }

    // MARK: Reading

    /// Reads the prompts of a file or directory.
    /// - Parameters:
    ///   - path: The file (or PEFT directory).
    ///   - format: The format; nil detects it from the path (and, for an unknown extension, the
    ///     `.sprompt` magic).
    /// - Returns: The prompts; `model` is nil when the source holds no fingerprint.
    /// - Throws: `PromptConversionError` naming the problem (unknown format, malformed file, unsupported variant).
    public static func read(path: String, format: PromptFormat? = nil) throws(PromptConversionError) -> PromptFile {
        guard let format = format ?? PromptFormat.detect(path: path) ?? sniff(path) else {
            throw PromptConversionError(path, "cannot tell the format from the name; give it explicitly "
                                  + "(\(PromptFormat.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        switch format {
        case .sprompt:
            do { return try PromptFile.read(path: path) } catch { throw PromptConversionError(path, detail(error)) }
        case .peft: return try PEFTAdapter.read(directory: path)
        case .gguf: return try GGUFAdapter.read(path: path)
        case .npy:
            let prompt = try NumPyPrompts.prompt(named: baseName(path, dropping: ".npy"),
                                                 npy: try load(path), path: path)
            return PromptFile(model: nil, prompts: [prompt])
        case .npz: return try NumPyPrompts.readArchive(try load(path), path: path)
        case .safetensors: return try SingleTensor.read(try load(path), path: path)
        }
    }

    // MARK: Writing

    /// Writes prompts in a format, atomically for files (a missing PEFT directory is created whole; in an
    /// existing one its two files are each replaced atomically, one right after the other).
    /// - Parameters:
    ///   - file: The prompts. Formats other than `.sprompt` and `.npz` hold exactly one.
    ///   - path: The destination file or directory.
    ///   - format: The format; nil detects it from the path.
    ///   - peft: Values for a PEFT config.
    /// - Throws: `PromptConversionError` when the format cannot hold the prompts (several prompts, a dtype it
    ///   lacks), when a value is not finite, or when the file cannot be written.
    public static func write(_ file: PromptFile, to path: String, format: PromptFormat? = nil,
                             peft: PEFTOptions = PEFTOptions()) throws(PromptConversionError) {
        guard let format = format ?? PromptFormat.detect(path: path) else {
            throw PromptConversionError(path, "cannot tell the output format from the name; give it explicitly")
        }
        guard !file.prompts.isEmpty else { throw PromptConversionError(path, "no prompt to write") }
        if !format.holdsBanks && file.prompts.count > 1 {
            throw PromptConversionError(path, "a \(format.rawValue) file holds one prompt; the source holds \(file.prompts.count) "
                                  + "(\(file.prompts.map(\.name).joined(separator: ", "))); pick one")
        }
        if let model = file.model, let bad = file.prompts.first(where: { $0.width != model.embeddingLength }) {
            throw PromptConversionError(path, "prompt '\(bad.name)' is \(bad.width) wide; the model's width is \(model.embeddingLength)")
        }
        for prompt in file.prompts {
            if let bad = prompt.vectors.firstIndex(where: { !$0.isFinite }) {
                throw PromptConversionError(path, "prompt '\(prompt.name)' holds a non-finite value at index \(bad)")
            }
            if prompt.dtype == .f16, let bad = prompt.vectors.firstIndex(where: { abs($0) >= 65520 }) {
                throw PromptConversionError(path, "prompt '\(prompt.name)' value \(prompt.vectors[bad]) overflows f16")
            }
        }
        switch format {
        case .sprompt:
            do { try file.write(to: path) } catch { throw PromptConversionError(path, detail(error)) }
        case .peft: try PEFTAdapter.write(file, directory: path, options: peft)
        case .gguf: try store(try GGUFAdapter.encode(file), path)
        case .npy: try store(try NumPyPrompts.encode(file.prompts[0], path: path), path)
        case .npz: try store(try NumPyPrompts.encodeArchive(file.prompts, path: path), path)
        case .safetensors: try store(try SingleTensor.encode(file), path)
        }
    }

    // MARK: Helpers shared by the formats

    /// Reads a whole file (capped at 1 GiB + 64 MiB of framing).
    static func load(_ path: String) throws(PromptConversionError) -> [UInt8] {
        do { return try readFile(path, limit: PromptFile.maxPayloadSize + (64 << 20)) } catch {
            throw PromptConversionError(path, "\(error)")
        }
    }

    static func store(_ bytes: [UInt8], _ path: String) throws(PromptConversionError) {
        do { try AtomicFile.write(to: path, bytes: bytes) } catch { throw PromptConversionError(path, "\(error)") }
    }

    /// `.sprompt` files are recognised by their magic whatever their name.
    static func sniff(_ path: String) -> PromptFormat? {
        guard let file = try? MappedFile(path: path) else { return nil }
        if PromptFile.hasMagic(file.bytes) { return .sprompt }
        if file.count >= 4, UInt32(littleEndian: file.bytes.loadUnaligned(as: UInt32.self)) == 0x4655_4747 { return .gguf }  // "GGUF"
        return nil
    }

    /// The last path component without `suffix`, trailing slashes ignored.
    static func baseName(_ path: String, dropping suffix: String = "") -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        var name = trimmed.split(separator: "/").last.map(String.init) ?? String(trimmed)
        if !suffix.isEmpty, name.lowercased().hasSuffix(suffix), name.count > suffix.count { name.removeLast(suffix.count) }
        return name
    }

    /// A prompt name for a source that has none: its base name, made valid.
    static func validName(_ candidate: String) -> String {
        let cleaned = String(String.UnicodeScalarView(candidate.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
        if cleaned.isEmpty { return "prompt" }
        var name = cleaned
        while name.utf8.count > 256 { name.removeLast() }
        return name
    }

    /// Builds a prompt from values read elsewhere, checking the shape first.
    static func makePrompt(name: String, values: [Float], tokens: Int, width: Int, dtype: PromptDType,
                           path: String) throws(PromptConversionError) -> SoftPrompt {
        guard (1 ... PromptFile.maxDimension).contains(tokens), (1 ... PromptFile.maxDimension).contains(width),
              values.count == tokens * width else {
            throw PromptConversionError(path, "shape [\(tokens), \(width)] is not a soft prompt "
                                  + "(both dimensions 1...\(PromptFile.maxDimension))")
        }
        return SoftPrompt(name: validName(name), vectors: values, width: width, dtype: dtype)
    }

    /// Refuses a prompt whose width differs from its fingerprint's embedding length (Formats/sprompt.md
    /// section 2.2; the GGUF adapter and safetensors sidecar keys carry the same fingerprint).
    static func checkWidth(_ prompt: SoftPrompt, against model: ModelFingerprint?, path: String) throws(PromptConversionError) {
        if let model, model.embeddingLength != prompt.width {
            throw PromptConversionError(path, "the prompt's width \(prompt.width) differs from the model's embedding_length "
                                        + "\(model.embeddingLength)")
        }
    }

    /// The model fingerprint as the JSON object `.sprompt` stores.
    static func fingerprintJSON(_ model: ModelFingerprint, path: String) throws(PromptConversionError) -> JSONValue {
        do {
            return try Writer(file: PromptFile(model: nil, prompts: []), filter: .none).modelJSON(model)
        } catch { throw PromptConversionError(path, detail(error)) }
    }

    /// A `.sprompt` error's message with its offset, without its path.
    static func detail(_ error: SpromptError) -> String {
        (error.offset.map { "at byte \($0): " } ?? "") + error.message
    }

    /// A fingerprint from the JSON object `.sprompt` stores (same validation).
    static func fingerprint(_ value: JSONValue, path: String) throws(PromptConversionError) -> ModelFingerprint {
        do { return try Schema(path: path, at: 0).readModel(value) } catch { throw PromptConversionError(path, error.message) }
    }

    static func serialize(_ value: JSONValue) -> String {
        (try? JSON.serialize(value)) ?? "{}"
    }

    static func parseObject(_ text: String, _ what: String, path: String) throws(PromptConversionError) -> JSONObject {
        let value: JSONValue
        do { value = try JSON.parse(text) } catch { throw PromptConversionError(path, "\(what): \(error)") }
        guard let object = value.objectValue else { throw PromptConversionError(path, "\(what) is not a JSON object") }
        return object
    }

    /// Values encoded little-endian in a prompt dtype.
    static func encodeValues(_ values: [Float], as dtype: PromptDType) -> [UInt8] {
        var out: [UInt8] = []
        PayloadCodec.encode(values, as: dtype, into: &out)
        return out
    }
}
