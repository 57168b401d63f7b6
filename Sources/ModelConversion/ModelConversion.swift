#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GGUF
import Llama
import Quants
import Safetensors
import TensorIO
import Tokenizers

/// Why a model conversion failed. The destination is left untouched.
public struct ConversionError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// The file or directory concerned, when known.
    public var path: String?

    public init(_ message: String, path: String? = nil) {
        self.message = message
        self.path = path
    }

    public var description: String { (path.map { "\($0): " } ?? "") + message }
}

/// Conversion of llama-family models between a GGUF file and a Hugging Face directory.
///
/// - GGUF → Hugging Face: `config.json`, `tokenizer.json`, `tokenizer_config.json` and
///   `model.safetensors` (F32, F16 or BF16; quantized weights are dequantized exactly as ggml does),
///   with the Q/K rows of llama/mistral put back in Hugging Face order.
/// - Hugging Face → GGUF: architecture and tokenizer metadata (`general.*`, `<arch>.*`,
///   `tokenizer.ggml.*`), weight matrices kept in F32/F16/BF16 or quantized (Q8_0, Q4_0, Q4_1,
///   Q4_K), norms and biases in F32, Q/K rows of llama/mistral permuted to llama.cpp's order.
///
/// The tensor names, shapes and the permutation are specified in Formats/tensor-names.md. Both
/// directions write atomically: a GGUF file through a temporary file renamed into place, a directory
/// by writing a temporary sibling directory and renaming it (the destination must not exist or be
/// an empty directory).
public enum ModelConversion {
    /// How converted weight matrices are stored.
    public enum WeightType: String, Sendable, CaseIterable {
        case f32, f16, bf16
        case q8_0, q4_0, q4_1
        case q4_K = "q4_k"

        /// The ggml type.
        public var ggmlType: GGMLType {
            switch self {
            case .f32: .f32
            case .f16: .f16
            case .bf16: .bf16
            case .q8_0: .q8_0
            case .q4_0: .q4_0
            case .q4_1: .q4_1
            case .q4_K: .q4_K
            }
        }

        /// Whether the type is a block quantization (only GGUF can hold those).
        public var isQuantized: Bool { ![.f32, .f16, .bf16].contains(self) }
    }

    /// What a conversion wrote.
    public struct Summary: Sendable {
        /// The file or directory written.
        public var output: String
        /// The number of tensors written.
        public var tensorCount: Int
        /// The total size of the files written, in bytes.
        public var bytesWritten: Int
        /// How many tensors were stored in each type.
        public var typeCounts: [GGMLType: Int]
        /// Matrices stored in another type than asked, as llama.cpp's quantizer does it: the output
        /// head, and matrices whose rows do not fill whole blocks (see `storageType`).
        public var substitutions: [(tensor: String, type: GGMLType)]
    }

    // MARK: - GGUF → Hugging Face

    /// Writes a Hugging Face directory holding the model of a GGUF file.
    /// - Parameters:
    ///   - gguf: A llama, mistral or qwen2 GGUF with a byte-level BPE tokenizer.
    ///   - directory: The directory to create (it must not exist, or be empty).
    ///   - dtype: The safetensors dtype: `.f32`, `.f16` or `.bf16`. When nil: F16 or BF16 if every
    ///     matrix of the file has that type, F32 otherwise (so quantized weights convert exactly).
    ///   - threads: Threads for dequantization and encoding.
    /// - Returns: What was written.
    /// - Throws: `ConversionError` (a quantized `dtype`, a model or tokenizer that has no Hugging Face
    ///   equivalent here, or an I/O failure).
    @discardableResult
    public static func convertGGUFToHuggingFace(_ gguf: GGUFFile, directory: String, dtype: WeightType? = nil,
                                                threads: Int = 1) throws(ConversionError) -> Summary {
        let model: LlamaModel
        do { model = try LlamaModel(gguf: gguf) } catch { throw ConversionError(error.description) }
        let config = model.config
        if model.ropeFreqFactors != nil {
            throw ConversionError("RoPE frequency factors (rope_freqs.weight, llama3 scaling) cannot be written to config.json here", path: gguf.path)
        }
        let specs = TensorSpec.all(for: config)
        let infos = specs.map { gguf.tensor(named: $0.gguf)! }  // LlamaModel checked that they exist

        let target: SafetensorsDType
        switch dtype {
        case nil:
            let types = Set(zip(specs, infos).filter { $0.0.isMatrix }.map(\.1.type))
            target = types == [.f16] ? .f16 : types == [.bf16] ? .bf16 : .f32
        case .f32?: target = .f32
        case .f16?: target = .f16
        case .bf16?: target = .bf16
        case let other?:
            throw ConversionError("a Hugging Face checkpoint cannot hold \(other.rawValue) weights (use f32, f16 or bf16)")
        }

        let vocabulary: TokenizerVocabulary
        let tokenizerJSON: JSONValue, tokenizerConfig: JSONValue, configJSON: JSONValue
        do {
            vocabulary = try TokenizerVocabulary(gguf: gguf)
        } catch { throw ConversionError("tokenizer: \(error)", path: gguf.path) }
        do {
            tokenizerJSON = try vocabulary.huggingFaceTokenizerJSON()
            tokenizerConfig = try vocabulary.huggingFaceTokenizerConfig(
                chatTemplate: gguf.string("tokenizer.chat_template"), modelMaxLength: config.maxPositionEmbeddings)
        } catch { throw ConversionError("tokenizer: \(error.message)", path: gguf.path) }
        let torchDType = target == .f32 ? "float32" : target == .f16 ? "float16" : "bfloat16"
        let special: SpecialTokens
        do { special = try Tokenizer(vocabulary).specialTokens } catch { throw ConversionError("tokenizer: \(error)", path: gguf.path) }
        do {
            configJSON = try config.huggingFaceJSON(torchDType: torchDType, bosTokenID: vocabulary.bosTokenID ?? special.bos,
                                                    eosTokenID: vocabulary.eosTokenID ?? special.eos)
        } catch { throw ConversionError(error.message, path: gguf.path) }

        // transformers expects "format": "pt"; the GGUF's descriptive general.* strings ride along so
        // that converting back restores them.
        var metadata = ["format": "pt"]
        for entry in gguf.metadata where entry.key.hasPrefix("general.") && !reservedGeneralKeys.contains(entry.key) {
            if let text = entry.value.stringValue { metadata[entry.key] = text }
        }
        var writer = SafetensorsWriter(metadata: metadata)
        let encoding = target.ggmlType!
        for (spec, info) in zip(specs, infos) {
            let permutedHeadSize = spec.permutedHeadSize
            guard spec.isMatrix else {
                do {
                    var values = try Quantization.dequantize(info.type, bytes: gguf.data(for: info), count: spec.rows)
                    if let D = permutedHeadSize { values = reorder(values, headSize: D, toGGUF: false) }
                    try writer.add(spec.huggingFace, shape: spec.shape, floats: values, as: target)
                } catch { throw ConversionError("tensor '\(spec.gguf)': \(error)", path: gguf.path) }
                continue
            }
            let source = RowSource(bytes: gguf.data(for: info), type: info.type, cols: spec.cols)
            do {
                try writer.add(spec.huggingFace, dtype: target, shape: spec.shape) { sink in
                    try withExtendedLifetime(gguf) {
                        try encodeRows(rows: spec.rows, cols: spec.cols, as: encoding, threads: threads, source: source,
                                       sourceRow: { r in
                                           permutedHeadSize.map { QKPermutation.ggufRow(forHuggingFaceRow: r, headSize: $0) } ?? r
                                       },
                                       emit: { try sink.write($0) })
                    }
                }
            } catch { throw ConversionError("\(error)", path: directory) }
        }

        let texts: [(String, JSONValue)] = [("config.json", configJSON), ("tokenizer.json", tokenizerJSON),
                                            ("tokenizer_config.json", tokenizerConfig)]
        let bytes = try writeDirectory(directory) { (temporary: String) throws in
            try writer.write(to: temporary + "/model.safetensors")
            for (name, value) in texts {
                try AtomicFile.write(to: temporary + "/" + name, bytes: Array(JSON.serialize(value, pretty: true).utf8) + [0x0A])
            }
        }
        return Summary(output: directory, tensorCount: specs.count, bytesWritten: bytes,
                       typeCounts: [encoding: specs.count], substitutions: [])
    }

    // MARK: - Hugging Face → GGUF

    /// Writes a GGUF file holding the model of a Hugging Face directory.
    /// - Parameters:
    ///   - directory: `config.json`, `tokenizer.json` (byte-level BPE), optionally
    ///     `tokenizer_config.json`, and `model.safetensors` or a sharded index.
    ///   - path: The GGUF file to write (replaced atomically if it exists).
    ///   - type: The type of the weight matrices. When nil, each keeps its dtype (F64 becomes F32).
    ///     As llama.cpp's quantizer, the output head stays at Q6_K/Q8_0 and matrices whose rows do not
    ///     fill whole blocks fall back to another type (`storageType`); the summary lists them.
    ///   - name: `general.name` (default: the directory's name).
    ///   - threads: Threads for decoding and quantization.
    /// - Returns: What was written.
    /// - Throws: `ConversionError` naming the file and the problem.
    @discardableResult
    public static func convertHuggingFaceToGGUF(directory: String, path: String, type: WeightType? = nil,
                                                name: String? = nil, threads: Int = 1) throws(ConversionError) -> Summary {
        let config: LlamaConfig
        let checkpoint: SafetensorsCheckpoint
        do {
            config = try LlamaConfig(huggingFaceDirectory: directory)
            checkpoint = try SafetensorsCheckpoint(path: directory)
            _ = try LlamaModel(huggingFace: checkpoint, config: config)  // names, shapes and dtypes
        } catch { throw ConversionError("\(error)", path: directory) }

        var vocabulary: TokenizerVocabulary
        do { vocabulary = try TokenizerVocabulary(huggingFaceDirectory: directory) } catch {
            throw ConversionError("tokenizer: \(error.message)", path: error.path ?? directory)
        }
        if vocabulary.tokens.count > config.vocabSize {
            throw ConversionError("the tokenizer has \(vocabulary.tokens.count) tokens but the model only \(config.vocabSize) embeddings",
                                  path: directory)
        }
        // Embedding rows without a token become unused tokens, as llama.cpp's converter pads them.
        if vocabulary.tokens.count < config.vocabSize {
            let start = vocabulary.tokens.count
            vocabulary.tokens += (start ..< config.vocabSize).map { "[PAD\($0)]" }
            vocabulary.tokenTypes = (vocabulary.tokenTypes ?? Array(repeating: TokenType.normal.rawValue, count: start))
                + Array(repeating: TokenType.unused.rawValue, count: config.vocabSize - start)
        }
        do { _ = try Tokenizer(vocabulary) } catch { throw ConversionError("tokenizer: \(error)", path: directory) }
        let chatTemplate = Self.chatTemplate(directory)
        // Descriptive general.* strings stored by convertGGUFToHuggingFace in the safetensors metadata.
        let stored = checkpoint.files.first?.metadata.filter {
            $0.key.hasPrefix("general.") && !reservedGeneralKeys.contains($0.key) && $0.key != "general.name" && $0.key != "general.type"
        } ?? []
        let storedName = checkpoint.files.first?.metadataDictionary["general.name"]
        let modelName = name ?? storedName ?? baseName(directory)

        let specs = TensorSpec.all(for: config)
        var plans: [(spec: TensorSpec, source: RowSource?, type: GGMLType)] = []
        var substitutions: [(tensor: String, type: GGMLType)] = []
        var typeCounts: [GGMLType: Int] = [:]
        for spec in specs {
            let (file, info) = checkpoint.tensor(named: spec.huggingFace)!
            let sourceType: GGMLType
            if let viewed = info.dtype.ggmlType {
                sourceType = viewed
            } else {
                throw ConversionError("tensor '\(spec.huggingFace)' is \(info.dtype.rawValue) (supported: F32, F16, BF16, F64)", path: file.path)
            }
            var stored: GGMLType
            if !spec.isMatrix {
                stored = .f32
            } else if let type {
                stored = storageType(type.ggmlType, cols: spec.cols,
                                     isOutputHead: spec.gguf == (config.tieWordEmbeddings ? "token_embd.weight" : "output.weight"))
                if stored != type.ggmlType { substitutions.append((spec.gguf, stored)) }
            } else {
                stored = sourceType == .f64 ? .f32 : sourceType
            }
            typeCounts[stored, default: 0] += 1
            let source = spec.isMatrix ? RowSource(bytes: file.data(for: info), type: sourceType, cols: spec.cols) : nil
            plans.append((spec, source, stored))
        }

        var writer = GGUFWriter()
        do {
            try writer.addMetadata("general.architecture", .string(GGUFString(config.architecture)))
            try writer.addMetadata("general.type", .string("model"))
            try writer.addMetadata("general.name", .string(GGUFString(modelName)))
            for (key, value) in stored.sorted(by: { $0.key < $1.key }) { try writer.addMetadata(key, .string(GGUFString(value))) }
            for (key, value) in architectureMetadata(config) { try writer.addMetadata(key, value) }
            let matrixTypes = plans.filter { $0.spec.isMatrix }.map { ($0.type, $0.spec.rows * $0.spec.cols) }
            try writer.addMetadata("general.file_type", .uint32(fileType(matrixTypes)))
            for (key, value) in tokenizerMetadata(vocabulary, chatTemplate: chatTemplate) { try writer.addMetadata(key, value) }
            try writer.addMetadata("general.quantization_version", .uint32(2))
            for plan in plans {
                let (spec, source, stored) = plan
                let permutedHeadSize = spec.permutedHeadSize
                guard spec.isMatrix else {
                    var values = try checkpoint.floats(named: spec.huggingFace)
                    if let D = permutedHeadSize { values = reorder(values, headSize: D, toGGUF: true) }
                    var bytes: [UInt8] = []
                    bytes.reserveCapacity(values.count * 4)
                    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
                    try writer.addTensor(name: spec.gguf, type: .f32, shape: spec.ggufShape, bytes: bytes)
                    continue
                }
                try writer.addTensor(name: spec.gguf, type: stored, shape: spec.ggufShape) { emit in
                    try withExtendedLifetime(checkpoint) {
                        try encodeRows(rows: spec.rows, cols: spec.cols, as: stored, threads: threads, source: source!,
                                       sourceRow: { g in
                                           permutedHeadSize.map { QKPermutation.huggingFaceRow(forGGUFRow: g, headSize: $0) } ?? g
                                       },
                                       emit: emit)
                    }
                }
            }
        } catch { throw ConversionError("\(error)", path: path) }
        do { try writer.write(to: path) } catch { throw ConversionError("\(error)", path: path) }
        return Summary(output: path, tensorCount: plans.count, bytesWritten: fileSize(path) ?? 0,
                       typeCounts: typeCounts, substitutions: substitutions)
    }

    /// The type a matrix is stored in when `requested` is asked for, following llama.cpp's quantizer:
    /// - the output head (`output.weight`, or `token_embd.weight` when tied) of a block-quantized
    ///   model other than Q8_0 is kept at Q6_K, or Q8_0 when its rows are not multiples of 256;
    /// - a type whose blocks do not divide the row length falls back: Q4_K and Q6_K to Q5_0 resp.
    ///   Q8_0, then F16; Q8_0, Q4_0, Q4_1, Q5_0 to F16.
    static func storageType(_ requested: GGMLType, cols: Int, isOutputHead: Bool) -> GGMLType {
        var type = requested
        if isOutputHead && type.blockSize > 1 && type != .q8_0 { type = .q6_K }
        while cols % type.blockSize != 0 {
            switch type {
            case .q4_K: type = .q5_0
            case .q6_K: type = .q8_0
            default: type = .f16
            }
        }
        return type
    }

    // MARK: - Metadata

    /// `general.*` keys that describe the file itself rather than the model; never carried over.
    static let reservedGeneralKeys: Set<String> = ["general.architecture", "general.file_type", "general.quantization_version",
                                                   "general.alignment"]

    /// `<arch>.*` keys for a configuration, as llama.cpp's converter writes them.
    static func architectureMetadata(_ config: LlamaConfig) -> [(String, GGUFValue)] {
        let a = config.architecture
        var entries: [(String, GGUFValue)] = [
            ("\(a).context_length", .uint32(UInt32(config.maxPositionEmbeddings))),
            ("\(a).embedding_length", .uint32(UInt32(config.hiddenSize))),
            ("\(a).block_count", .uint32(UInt32(config.numHiddenLayers))),
            ("\(a).feed_forward_length", .uint32(UInt32(config.intermediateSize))),
            ("\(a).attention.head_count", .uint32(UInt32(config.numAttentionHeads))),
            ("\(a).attention.head_count_kv", .uint32(UInt32(config.numKeyValueHeads))),
            ("\(a).rope.freq_base", .float32(config.ropeTheta)),
            ("\(a).attention.layer_norm_rms_epsilon", .float32(config.rmsNormEps)),
            ("\(a).vocab_size", .uint32(UInt32(config.vocabSize))),
            ("\(a).rope.dimension_count", .uint32(UInt32(config.ropeDimensions))),
        ]
        if config.ropeFreqScale != 1 {
            entries.append(("\(a).rope.scaling.type", .string("linear")))
            entries.append(("\(a).rope.scaling.factor", .float32(1 / config.ropeFreqScale)))
        }
        return entries
    }

    /// `tokenizer.ggml.*` keys (and `tokenizer.chat_template`) for a vocabulary: every field that is
    /// set, under the key `TokenizerVocabulary(gguf:)` reads it from.
    static func tokenizerMetadata(_ v: TokenizerVocabulary, chatTemplate: String?) -> [(String, GGUFValue)] {
        var entries: [(String, GGUFValue)] = [("tokenizer.ggml.model", .string(GGUFString(v.model)))]
        if let pre = v.preTokenizer { entries.append(("tokenizer.ggml.pre", .string(GGUFString(pre)))) }
        entries.append(("tokenizer.ggml.tokens", .array(GGUFArray(strings: v.tokens))))
        if let scores = v.scores { entries.append(("tokenizer.ggml.scores", .array(GGUFArray(scores)))) }
        if let types = v.tokenTypes { entries.append(("tokenizer.ggml.token_type", .array(GGUFArray(types)))) }
        if !v.merges.isEmpty { entries.append(("tokenizer.ggml.merges", .array(GGUFArray(strings: v.merges)))) }
        let ids: [(String, Int32?)] = [
            ("bos_token_id", v.bosTokenID), ("eos_token_id", v.eosTokenID), ("eot_token_id", v.eotTokenID),
            ("eom_token_id", v.eomTokenID), ("unknown_token_id", v.unknownTokenID),
            ("seperator_token_id", v.separatorTokenID), ("padding_token_id", v.paddingTokenID),
            ("mask_token_id", v.maskTokenID), ("fim_pre_token_id", v.fimPrefixTokenID),
            ("fim_suf_token_id", v.fimSuffixTokenID), ("fim_mid_token_id", v.fimMiddleTokenID),
            ("fim_pad_token_id", v.fimPadTokenID), ("fim_rep_token_id", v.fimRepoTokenID),
            ("fim_sep_token_id", v.fimSeparatorTokenID),
        ]
        for (key, id) in ids {
            if let id, id >= 0 { entries.append(("tokenizer.ggml." + key, .uint32(UInt32(id)))) }
        }
        let flags: [(String, Bool?)] = [("add_bos_token", v.addBOS), ("add_eos_token", v.addEOS),
                                        ("add_space_prefix", v.addSpacePrefix)]
        for (key, flag) in flags {
            if let flag { entries.append(("tokenizer.ggml." + key, .bool(flag))) }
        }
        if let chatTemplate { entries.append(("tokenizer.chat_template", .string(GGUFString(chatTemplate)))) }
        return entries
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`) for the type holding most matrix elements.
    static func fileType(_ matrices: [(GGMLType, Int)]) -> UInt32 {
        var elements: [GGMLType: Int] = [:]
        for (type, count) in matrices { elements[type, default: 0] += count }
        let dominant = elements.max { $0.value != $1.value ? $0.value < $1.value : $0.key.rawValue > $1.key.rawValue }?.key ?? .f32
        switch dominant {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q4_K: return 14  // MOSTLY_Q4_K_S: every matrix Q4_K
        case .bf16: return 32
        default: return 0
        }
    }

    /// The chat template of `tokenizer_config.json`: a string, or the entry named "default" of a list
    /// of named templates.
    static func chatTemplate(_ directory: String) -> String? {
        let path = directory + "/tokenizer_config.json"
        guard fileExists(path), let bytes = try? readFile(path, limit: 512 << 20),
              let json = try? JSON.parse(bytes, maxDepth: 128) else { return nil }
        switch json["chat_template"] {
        case .string(let text)?: return text
        case .array(let list)?:
            return list.first { $0["name"]?.stringValue == "default" }?["template"]?.stringValue
        default: return nil
        }
    }

    // MARK: - Rows

    /// A permuted Q/K bias in the other layout: GGUF order when `toGGUF`, Hugging Face order otherwise.
    static func reorder(_ values: [Float], headSize D: Int, toGGUF: Bool) -> [Float] {
        var out = values
        for i in values.indices {
            out[i] = values[toGGUF ? QKPermutation.huggingFaceRow(forGGUFRow: i, headSize: D)
                                   : QKPermutation.ggufRow(forHuggingFaceRow: i, headSize: D)]
        }
        return out
    }

    /// The rows of a tensor in some ggml encoding (a GGUF tensor, or a safetensors tensor viewed as
    /// F32/F16/BF16/F64 rows).
    struct RowSource: @unchecked Sendable {
        // @unchecked: a read-only view into a mapping the caller keeps alive while it is used.
        let bytes: UnsafeRawBufferPointer
        let format: any QuantFormat.Type
        let rowBytes: Int
        let cols: Int

        init(bytes: UnsafeRawBufferPointer, type: GGMLType, cols: Int) {
            self.bytes = bytes
            format = Quantization.format(for: type)!
            rowBytes = type.byteCount(elements: cols)!
            self.cols = cols
        }

        /// Decodes row `r` into `out` (`cols` floats).
        func decode(_ r: Int, into out: UnsafeMutablePointer<Float>) {
            // Cannot throw: row size and type were checked when the tensor was accepted.
            try! format.dequantizeRow(UnsafeRawBufferPointer(rebasing: bytes[r * rowBytes ..< (r + 1) * rowBytes]),
                                      into: UnsafeMutableBufferPointer(start: out, count: cols))
        }
    }

    /// Decodes `rows` rows (destination row d comes from source row `sourceRow(d)`), encodes them as
    /// `type` and passes the bytes to `emit` in order, a chunk of rows at a time. Decoding and
    /// encoding run on up to `threads` threads.
    /// - Throws: `QuantError` (non-finite weights for a block type) or what `emit` throws.
    static func encodeRows(rows: Int, cols: Int, as type: GGMLType, threads: Int, source: RowSource,
                           sourceRow: @escaping @Sendable (Int) -> Int,
                           emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        let rowBytes = type.byteCount(elements: cols)!
        // A chunk of about 4 MiB of floats, at least one row.
        let chunkRows = max(1, min(rows, (1 << 20) / max(1, cols)))
        let floats = UnsafeMutableBufferPointer<Float>.allocate(capacity: chunkRows * cols)
        let encoded = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkRows * rowBytes, alignment: 64)
        let failures = UnsafeMutableBufferPointer<Int32>.allocate(capacity: chunkRows)
        defer { floats.deallocate(); encoded.deallocate(); failures.deallocate() }
        let floatAddress = Int(bitPattern: floats.baseAddress), encodedAddress = Int(bitPattern: encoded.baseAddress)
        let failureAddress = Int(bitPattern: failures.baseAddress)
        var start = 0
        while start < rows {
            let count = min(chunkRows, rows - start)
            let first = start
            let tasks = max(1, min(count, threads * 4))
            let per = (count + tasks - 1) / tasks
            parallelFor(tasks, threads: threads) { task in
                let floats = UnsafeMutablePointer<Float>(bitPattern: floatAddress)!
                let encoded = UnsafeMutableRawPointer(bitPattern: encodedAddress)!
                let failures = UnsafeMutablePointer<Int32>(bitPattern: failureAddress)!
                let end = min(count, task * per + per)
                guard task * per < end else { return }
                for i in task * per ..< end {
                    let row = floats + i * cols
                    source.decode(sourceRow(first + i), into: row)
                    do {
                        try Quantization.quantize(type, UnsafeBufferPointer(start: row, count: cols),
                                                  into: UnsafeMutableRawBufferPointer(start: encoded + i * rowBytes, count: rowBytes))
                        failures[i] = 0
                    } catch {
                        failures[i] = 1
                    }
                }
            }
            if let bad = (0 ..< count).first(where: { failures[$0] != 0 }) {
                // Re-run the failing row to surface its error.
                let row = floats.baseAddress! + bad * cols
                _ = try Quantization.quantize(type, UnsafeBufferPointer(start: row, count: cols))
            }
            try emit(UnsafeRawBufferPointer(start: encoded.baseAddress, count: count * rowBytes))
            start += count
        }
    }

    // MARK: - Files

    /// Creates `directory` atomically: `body` fills a temporary sibling directory (a locked
    /// `TemporaryDirectory`, so a killed run's leftovers are collected by the next one), which is then
    /// renamed to `directory`. On failure the temporary directory is removed and nothing changes.
    /// - Returns: The total size of the files written.
    static func writeDirectory(_ directory: String, _ body: (String) throws -> Void) throws(ConversionError) -> Int {
        var trimmed = directory
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        if fileExists(trimmed) {
            guard isDirectory(trimmed) else { throw ConversionError("exists and is not a directory", path: trimmed) }
            let existing = (try? listDirectory(trimmed)) ?? ["?"]
            guard existing.isEmpty else { throw ConversionError("exists and is not empty", path: trimmed) }
        }
        let temporary: TemporaryDirectory
        do { temporary = try TemporaryDirectory(beside: trimmed) } catch {
            throw ConversionError("cannot create a temporary directory beside it: \(error)", path: trimmed)
        }
        var total = 0
        do {
            try body(temporary.path)
            for name in try listDirectory(temporary.path) { total += fileSize(temporary.path + "/" + name) ?? 0 }
            chmod(temporary.path, 0o755)
            try temporary.commit(to: trimmed)
        } catch {
            temporary.remove()
            throw ConversionError("\(error)", path: trimmed)
        }
        return total
    }

    static func fileSize(_ path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    static func baseName(_ path: String) -> String {
        let parts = path.split(separator: "/")
        return parts.last.map(String.init) ?? path
    }
}
