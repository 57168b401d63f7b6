import TensorIO

// The reader and writer of `Formats/sprompt.md`. Rules are checked in the order the spec lists them,
// and nothing is allocated on the strength of a size before that size has been checked against the
// caps and the bytes that are actually there.

/// Header field offsets (spec section 2).
enum HeaderField {
    static let version = 8
    static let flags = 12
    static let metadataSize = 16
    static let payloadSize = 24
    static let storedSize = 32
    static let checksum = 40
    /// The bytes the header checksum covers before the metadata.
    static let checksummed = 40
}

struct Reader {
    let bytes: UnsafeRawBufferPointer
    let path: String?

    func fail(_ kind: SpromptError.Kind, _ message: String, at offset: Int? = nil) -> SpromptError {
        SpromptError(kind, message, offset: offset, path: path)
    }

    func u32(_ offset: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    func u64(_ offset: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }

    mutating func decode() throws(SpromptError) -> PromptFile {
        let n = bytes.count
        let header = PromptFile.headerSize
        // Rules 1–3: magic, version, complete fixed header, flags.
        let shown = min(n, PromptFile.magic.count)
        guard bytes.prefix(shown).elementsEqual(PromptFile.magic.prefix(shown)) else {
            throw fail(.badMagic, "not a .sprompt file (the first bytes are not 89 53 50 52 4F 4D 50 54)", at: 0)
        }
        if n < HeaderField.flags {
            throw fail(.truncated, "the file ends inside the fixed header (\(n) of \(header) bytes)", at: n)
        }
        let version = u32(HeaderField.version)
        guard version == PromptFile.version else {
            throw fail(.unsupportedVersion, "format version \(version) is not supported (this reader knows version 1)",
                       at: HeaderField.version)
        }
        if n < header {
            throw fail(.truncated, "the file ends inside the fixed header (\(n) of \(header) bytes)", at: n)
        }
        let flags = u32(HeaderField.flags)
        guard flags == 0 else {
            throw fail(.reservedFlags, "reserved flags are 0x\(String(flags, radix: 16)), not 0", at: HeaderField.flags)
        }
        // Rules 4–7: sizes against the caps, before anything else is looked at.
        let rawMetadata = u64(HeaderField.metadataSize)
        let rawPayload = u64(HeaderField.payloadSize)
        let rawStored = u64(HeaderField.storedSize)
        guard rawMetadata <= UInt64(PromptFile.maxMetadataSize) else {
            throw fail(.metadataTooLarge, "metadata of \(rawMetadata) bytes exceeds the \(PromptFile.maxMetadataSize)-byte cap",
                       at: HeaderField.metadataSize)
        }
        guard rawPayload <= UInt64(PromptFile.maxPayloadSize) else {
            throw fail(.payloadTooLarge, "a payload of \(rawPayload) bytes exceeds the \(PromptFile.maxPayloadSize)-byte cap",
                       at: HeaderField.payloadSize)
        }
        let metadataSize = Int(rawMetadata), payloadSize = Int(rawPayload)
        guard rawStored <= UInt64(PayloadCodec.maxStoredSize(payloadSize)) else {
            throw fail(.payloadTooLarge, "a stored payload of \(rawStored) bytes is larger than any zstd frame of "
                       + "\(payloadSize) bytes", at: HeaderField.storedSize)
        }
        let storedSize = Int(rawStored)
        guard payloadSize <= PromptFile.maxExpansion * storedSize else {
            throw fail(.decompressionBomb, "\(storedSize) stored bytes cannot expand to the declared \(payloadSize) bytes "
                       + "(zstd expands at most \(PromptFile.maxExpansion)×)", at: HeaderField.payloadSize)
        }
        // Rules 8–9: the file holds exactly the sections.
        let metadataStart = header
        let payloadStart = metadataStart + metadataSize
        let end = payloadStart + storedSize
        if n < payloadStart {
            throw fail(.truncated, "the file ends inside the metadata (\(n - metadataStart) of \(metadataSize) bytes)", at: n)
        }
        if n < end {
            throw fail(.truncated, "the file ends inside the payload (\(n - payloadStart) of \(storedSize) bytes)", at: n)
        }
        if n > end { throw fail(.trailingBytes, "\(n - end) bytes follow the payload", at: end) }
        // Rule 10: header checksum.
        var hash = SHA256()
        hash.update(UnsafeRawBufferPointer(rebasing: bytes[0 ..< HeaderField.checksummed]))
        let metadataBytes = UnsafeRawBufferPointer(rebasing: bytes[metadataStart ..< payloadStart])
        hash.update(metadataBytes)
        guard hash.finalize().elementsEqual(bytes[HeaderField.checksum ..< header]) else {
            throw fail(.headerChecksumMismatch, "the header checksum does not match the header and metadata",
                       at: HeaderField.checksum)
        }
        // Rules 11–12: JSON.
        let json: JSONValue
        do {
            json = try JSON.parse(metadataBytes, maxDepth: 64, rejectDuplicateKeys: true, largeIntegers: .asDouble)
        } catch {
            throw fail(error.kind == .duplicateKey ? .duplicateKey : .invalidJSON, "metadata: \(error.message)",
                       at: metadataStart + error.offset)
        }
        guard case .object(let top) = json else {
            throw fail(.invalidJSON, "the metadata is not a JSON object", at: metadataStart)
        }
        // Rules 13–30: the schema.
        var schema = Schema(path: path, at: metadataStart)
        let parsed = try schema.read(top, payloadSize: payloadSize)
        // Rules 31–36: the payload.
        let frame = UnsafeRawBufferPointer(rebasing: bytes[payloadStart ..< end])
        guard storedSize >= 4, frame.loadUnaligned(as: UInt32.self) == Zstd.frameMagic.littleEndian else {
            throw fail(.invalidFrame, "the payload is not a zstd frame", at: payloadStart)
        }
        guard let declared = Zstd.declaredContentSize(frame) else {
            throw fail(.invalidFrame, "the zstd frame does not declare its content size", at: payloadStart)
        }
        guard declared == UInt64(payloadSize) else {
            throw fail(.frameSizeMismatch, "the zstd frame declares \(declared) bytes, the header \(payloadSize)",
                       at: payloadStart)
        }
        guard let frameLength = Zstd.frameLength(frame) else {
            throw fail(.frameLengthMismatch, "the zstd frame is incomplete or corrupt", at: payloadStart)
        }
        guard frameLength == storedSize else {
            throw fail(.frameLengthMismatch, "the zstd frame is \(frameLength) bytes, the stored payload \(storedSize)",
                       at: payloadStart + frameLength)
        }
        var payload: [UInt8]
        switch Zstd.decompress(frame, size: payloadSize) {
        case .success(let out): payload = out
        case .failure(let failure):
            throw fail(.decompressionFailed, "zstd: \(failure.message)", at: payloadStart)
        }
        if parsed.filter == .byteShuffle {
            for prompt in parsed.prompts {
                PayloadCodec.unshuffle(&payload, offset: prompt.offset, length: prompt.length, size: prompt.dtype.size)
            }
        }
        let digest = SHA256.hex(SHA256.hash(payload))
        guard digest == parsed.payloadHash else {
            throw fail(.payloadChecksumMismatch, "the payload's SHA-256 is \(digest), the metadata says \(parsed.payloadHash)",
                       at: payloadStart)
        }
        let prompts = payload.withUnsafeBytes { raw in
            parsed.prompts.map { p in
                var prompt = SoftPrompt(name: p.name, vectors: PayloadCodec.decode(raw, offset: p.offset, count: p.tokens * p.width,
                                                                                   as: p.dtype),
                                        width: p.width, dtype: p.dtype, template: p.template,
                                        provenance: p.provenance, metrics: p.metrics)
                prompt.placement = p.placement
                return prompt
            }
        }
        return PromptFile(model: parsed.model, prompts: prompts, metadata: parsed.metadata)
    }
}

/// A prompt's entry in the metadata, before its values are read.
struct PromptEntry {
    var name: String
    var dtype: PromptDType
    var tokens: Int
    var width: Int
    var offset: Int
    var length: Int
    var placement: PromptPlacement
    var template: String?
    var provenance: JSONObject
    var metrics: JSONObject
}

struct ParsedMetadata {
    var filter: PayloadFilter
    var payloadHash: String
    var model: ModelFingerprint?
    var prompts: [PromptEntry]
    var metadata: JSONObject
}

/// Reads the metadata object against the schema (spec section 3).
struct Schema {
    let path: String?
    let at: Int

    func fail(_ kind: SpromptError.Kind, _ message: String) -> SpromptError {
        SpromptError(kind, "metadata: " + message, offset: at, path: path)
    }

    /// Refuses keys outside `allowed`.
    func checkKeys(_ object: JSONObject, _ allowed: [String], _ context: String) throws(SpromptError) {
        for key in object.keys where !allowed.contains(key) {
            throw fail(.unknownKey, "\(context) has the unknown key \"\(key)\" (allowed: \(allowed.joined(separator: ", ")))")
        }
    }

    func required(_ object: JSONObject, _ key: String, _ context: String) throws(SpromptError) -> JSONValue {
        guard let value = object[key] else { throw fail(.missingKey, "\(context) lacks the required key \"\(key)\"") }
        return value
    }

    func string(_ value: JSONValue, _ what: String) throws(SpromptError) -> String {
        guard case .string(let s) = value else { throw fail(.wrongType, "\(what) must be a string") }
        return s
    }

    func object(_ value: JSONValue, _ what: String) throws(SpromptError) -> JSONObject {
        guard case .object(let o) = value else { throw fail(.wrongType, "\(what) must be an object") }
        return o
    }

    func array(_ value: JSONValue, _ what: String) throws(SpromptError) -> [JSONValue] {
        guard case .array(let a) = value else { throw fail(.wrongType, "\(what) must be an array") }
        return a
    }

    /// An integer token (no fraction, no exponent) in `range`.
    func integer(_ value: JSONValue, _ what: String, _ range: ClosedRange<Int>) throws(SpromptError) -> Int {
        guard case .int(let i) = value else { throw fail(.wrongType, "\(what) must be an integer") }
        guard i >= Int64(range.lowerBound) && i <= Int64(range.upperBound) else {
            throw fail(.invalidValue, "\(what) is \(i), outside \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(i)
    }

    func number(_ value: JSONValue, _ what: String) throws(SpromptError) -> Double {
        switch value {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: throw fail(.wrongType, "\(what) must be a number")
        }
    }

    func sha256(_ value: JSONValue, _ what: String) throws(SpromptError) -> String {
        let s = try string(value, what)
        guard s.utf8.count == 64, s.utf8.allSatisfy({ (0x30 ... 0x39).contains($0) || (0x61 ... 0x66).contains($0) }) else {
            throw fail(.invalidValue, "\(what) must be 64 lowercase hexadecimal digits")
        }
        return s
    }

    static let topKeys = ["compression", "filter", "payload_sha256", "model", "prompts", "metadata"]
    static let promptKeys = ["name", "dtype", "shape", "offset", "length", "placement", "template", "provenance", "metrics"]
    static let modelKeys = ["architecture", "embedding_length", "layer_count", "vocab_size", "tokenizer_sha256", "weights"]
    static let weightsKeys = ["sketch_version", "sketch", "norms", "rows_sha256"]

    mutating func read(_ top: JSONObject, payloadSize: Int) throws(SpromptError) -> ParsedMetadata {
        try checkKeys(top, Self.topKeys, "the metadata object")
        let compression = try string(try required(top, "compression", "the metadata object"), "\"compression\"")
        guard compression == "zstd" else {
            throw fail(.invalidValue, "compression \"\(compression)\" is not supported (only \"zstd\")")
        }
        let filterName = try string(try required(top, "filter", "the metadata object"), "\"filter\"")
        guard let filter = PayloadFilter(rawValue: filterName) else {
            throw fail(.invalidValue, "filter \"\(filterName)\" is not one of none, byte_shuffle")
        }
        let payloadHash = try sha256(try required(top, "payload_sha256", "the metadata object"), "\"payload_sha256\"")
        let model = try top["model"].map { (v: JSONValue) throws(SpromptError) in try readModel(v) }
        let list = try array(try required(top, "prompts", "the metadata object"), "\"prompts\"")
        guard !list.isEmpty else { throw fail(.noPrompts, "\"prompts\" is empty (a file holds at least one prompt)") }
        guard list.count <= PromptFile.maxPrompts else {
            throw fail(.invalidValue, "\(list.count) prompts exceed the cap of \(PromptFile.maxPrompts)")
        }
        var prompts: [PromptEntry] = []
        var names = Set<String>()
        var next = 0
        for (index, element) in list.enumerated() {
            let entry = try readPrompt(element, index: index, expectedOffset: next)
            guard names.insert(entry.name).inserted else {
                throw fail(.duplicatePromptName, "two prompts are named '\(entry.name)'")
            }
            if let first = prompts.first, entry.width != first.width {
                throw fail(.widthMismatch, "prompt '\(entry.name)' has width \(entry.width), prompt '\(first.name)' "
                           + "\(first.width) (all prompts of a file share one width)")
            }
            if let model, entry.width != model.embeddingLength {
                throw fail(.widthMismatch, "prompt '\(entry.name)' has width \(entry.width), the model's embedding length is "
                           + "\(model.embeddingLength)")
            }
            next += entry.length  // each length ≤ 1 GiB and ≤ 65536 prompts: no overflow
            prompts.append(entry)
        }
        guard next == payloadSize else {
            throw fail(.payloadSizeMismatch, "the prompts hold \(next) bytes, the header declares a \(payloadSize)-byte payload")
        }
        let metadata = try top["metadata"].map { (v: JSONValue) throws(SpromptError) in try object(v, "\"metadata\"") } ?? [:]
        return ParsedMetadata(filter: filter, payloadHash: payloadHash, model: model, prompts: prompts, metadata: metadata)
    }

    func readPrompt(_ value: JSONValue, index: Int, expectedOffset: Int) throws(SpromptError) -> PromptEntry {
        let context = "prompts[\(index)]"
        let o = try object(value, context)
        try checkKeys(o, Self.promptKeys, context)
        let name = try string(try required(o, "name", context), "\(context).name")
        if let problem = PromptName.problem(name) { throw fail(.invalidPromptName, "\(context).name \(problem)") }
        let dtypeName = try string(try required(o, "dtype", context), "\(context).dtype")
        guard let dtype = PromptDType(rawValue: dtypeName) else {
            throw fail(.invalidValue, "\(context).dtype \"\(dtypeName)\" is not one of f32, f16, bf16")
        }
        let shapeValues = try array(try required(o, "shape", context), "\(context).shape")
        var shape: [Int64] = []
        for v in shapeValues {
            guard case .int(let i) = v else { throw fail(.wrongType, "\(context).shape must hold integers") }
            shape.append(i)
        }
        guard shape.count == 2 else {
            throw fail(.invalidShape, "\(context).shape has \(shape.count) dimensions, not 2 ([tokens, width])")
        }
        for d in shape where d < 1 || d > Int64(PromptFile.maxDimension) {
            throw fail(.invalidShape, "\(context).shape \(shape) has a dimension outside 1...\(PromptFile.maxDimension)")
        }
        let tokens = Int(shape[0]), width = Int(shape[1])
        guard let byteCount = Checked.product([tokens, width, dtype.size]), byteCount <= PromptFile.maxPayloadSize else {
            throw fail(.invalidShape, "\(context).shape \(shape) of \(dtype.rawValue) exceeds the \(PromptFile.maxPayloadSize)-byte cap")
        }
        let offset = try integer(try required(o, "offset", context), "\(context).offset", 0 ... PromptFile.maxPayloadSize)
        guard offset == expectedOffset else {
            throw fail(.promptLayout, "\(context).offset is \(offset), expected \(expectedOffset) (prompts tile the payload in order)")
        }
        let length = try integer(try required(o, "length", context), "\(context).length", 0 ... PromptFile.maxPayloadSize)
        guard length == byteCount else {
            throw fail(.promptLayout, "\(context).length is \(length), but \(tokens)×\(width) \(dtype.rawValue) values take \(byteCount) bytes")
        }
        let placementName = try string(try required(o, "placement", context), "\(context).placement")
        guard let placement = PromptPlacement(rawValue: placementName) else {
            throw fail(.invalidValue, "\(context).placement \"\(placementName)\" is not supported (only \"prefix\")")
        }
        var template: String?
        if let t = o["template"] {
            let text = try string(t, "\(context).template")
            guard PromptTemplate.isValid(text) else { throw fail(.invalidTemplate, "\(context).template does not contain {input}") }
            template = text
        }
        let provenance = try o["provenance"].map { (v: JSONValue) throws(SpromptError) in try object(v, "\(context).provenance") } ?? [:]
        let metrics = try o["metrics"].map { (v: JSONValue) throws(SpromptError) in try object(v, "\(context).metrics") } ?? [:]
        return PromptEntry(name: name, dtype: dtype, tokens: tokens, width: width, offset: offset, length: length,
                           placement: placement, template: template, provenance: provenance, metrics: metrics)
    }

    func readModel(_ value: JSONValue) throws(SpromptError) -> ModelFingerprint {
        let context = "\"model\""
        let o = try object(value, context)
        try checkKeys(o, Self.modelKeys, context)
        let architecture = try string(try required(o, "architecture", context), "model.architecture")
        guard !architecture.isEmpty else { throw fail(.invalidValue, "model.architecture is empty") }
        let limit = Int(Int32.max)
        let width = try integer(try required(o, "embedding_length", context), "model.embedding_length", 1 ... PromptFile.maxDimension)
        let layers = try integer(try required(o, "layer_count", context), "model.layer_count", 1 ... limit)
        let vocab = try integer(try required(o, "vocab_size", context), "model.vocab_size", 1 ... limit)
        var fingerprint = ModelFingerprint(architecture: architecture, embeddingLength: width, layerCount: layers, vocabSize: vocab)
        if let t = o["tokenizer_sha256"] { fingerprint.tokenizerHash = try sha256(t, "model.tokenizer_sha256") }
        if let w = o["weights"] {
            let weights = try object(w, "model.weights")
            try checkKeys(weights, Self.weightsKeys, "model.weights")
            fingerprint.sketchVersion = try integer(try required(weights, "sketch_version", "model.weights"),
                                                    "model.weights.sketch_version", 1 ... limit)
            let sketch = try array(try required(weights, "sketch", "model.weights"), "model.weights.sketch")
            let norms = try array(try required(weights, "norms", "model.weights"), "model.weights.norms")
            guard (1 ... PromptFile.maxSketch).contains(sketch.count), norms.count == sketch.count else {
                throw fail(.invalidValue, "model.weights.sketch and .norms must hold the same number (1...\(PromptFile.maxSketch)) "
                           + "of values (\(sketch.count) and \(norms.count))")
            }
            var values: [Double] = [], normValues: [Double] = []
            for v in sketch { values.append(try number(v, "model.weights.sketch[]")) }
            for v in norms {
                let x = try number(v, "model.weights.norms[]")
                guard x >= 0 else { throw fail(.invalidValue, "model.weights.norms holds a negative value") }
                normValues.append(x)
            }
            fingerprint.sketch = values
            fingerprint.sketchNorms = normValues
            fingerprint.weightsHash = try sha256(try required(weights, "rows_sha256", "model.weights"), "model.weights.rows_sha256")
        }
        return fingerprint
    }
}

enum PromptName {
    /// Why `name` is not a valid prompt name, or nil.
    static func problem(_ name: String) -> String? {
        let count = name.utf8.count
        if count == 0 { return "is empty" }
        if count > 256 { return "is \(count) bytes long (at most 256)" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "contains a control character"
        }
        return nil
    }
}

struct Writer {
    let file: PromptFile
    let filter: PayloadFilter

    func fail(_ kind: SpromptError.Kind, _ message: String) -> SpromptError { SpromptError(kind, message) }

    func encode() throws(SpromptError) -> [UInt8] {
        let prompts = file.prompts
        guard !prompts.isEmpty else { throw fail(.noPrompts, "a .sprompt file holds at least one prompt") }
        guard prompts.count <= PromptFile.maxPrompts else {
            throw fail(.invalidValue, "\(prompts.count) prompts exceed the cap of \(PromptFile.maxPrompts)")
        }
        var names = Set<String>()
        var payload: [UInt8] = []
        var entries: [JSONValue] = []
        for prompt in prompts {
            if let problem = PromptName.problem(prompt.name) { throw fail(.invalidPromptName, "prompt name \(problem)") }
            guard names.insert(prompt.name).inserted else { throw fail(.duplicatePromptName, "two prompts are named '\(prompt.name)'") }
            let range = 1 ... PromptFile.maxDimension
            guard range.contains(prompt.tokens), range.contains(prompt.width) else {
                throw fail(.invalidShape, "prompt '\(prompt.name)' has shape [\(prompt.tokens), \(prompt.width)]; "
                           + "both must be in 1...\(PromptFile.maxDimension)")
            }
            guard let count = Checked.mul(prompt.tokens, prompt.width), let bytes = Checked.mul(count, prompt.dtype.size),
                  bytes <= PromptFile.maxPayloadSize
            else { throw fail(.invalidShape, "prompt '\(prompt.name)' exceeds the payload cap") }
            guard prompt.vectors.count == count else {
                throw fail(.vectorCountMismatch, "prompt '\(prompt.name)' holds \(prompt.vectors.count) floats, not "
                           + "\(prompt.tokens)×\(prompt.width)")
            }
            if prompt.width != prompts[0].width {
                throw fail(.widthMismatch, "prompt '\(prompt.name)' has width \(prompt.width), prompt "
                           + "'\(prompts[0].name)' \(prompts[0].width) (all prompts of a file share one width)")
            }
            if let model = file.model, model.embeddingLength != prompt.width {
                throw fail(.widthMismatch, "prompt '\(prompt.name)' has width \(prompt.width), the model's embedding "
                           + "length is \(model.embeddingLength)")
            }
            if let template = prompt.template, !PromptTemplate.isValid(template) {
                throw fail(.invalidTemplate, "the template of prompt '\(prompt.name)' does not contain {input}")
            }
            for (i, v) in prompt.vectors.enumerated() {
                let stored: Bool
                switch prompt.dtype {
                case .f32: stored = v.isFinite
                case .f16: stored = v.isFinite && HalfFloat.f16ToFloat(HalfFloat.floatToF16(v)).isFinite
                case .bf16: stored = v.isFinite && HalfFloat.bf16ToFloat(HalfFloat.floatToBF16(v)).isFinite
                }
                guard stored else {
                    throw fail(.nonFiniteValue, "prompt '\(prompt.name)' value \(i) (token \(i / prompt.width)) is \(v)"
                               + (v.isFinite ? ", which overflows \(prompt.dtype.rawValue)" : ""))
                }
            }
            let offset = payload.count
            guard offset + bytes <= PromptFile.maxPayloadSize else {
                throw fail(.payloadTooLarge, "the prompts exceed the \(PromptFile.maxPayloadSize)-byte payload cap")
            }
            PayloadCodec.encode(prompt.vectors, as: prompt.dtype, into: &payload)
            var entry: JSONObject = [
                "name": .string(prompt.name), "dtype": .string(prompt.dtype.rawValue),
                "shape": [.int(Int64(prompt.tokens)), .int(Int64(prompt.width))],
                "offset": .int(Int64(offset)), "length": .int(Int64(bytes)),
                "placement": .string(prompt.placement.rawValue),
            ]
            if let template = prompt.template { entry["template"] = .string(template) }
            if !prompt.provenance.isEmpty { entry["provenance"] = .object(prompt.provenance) }
            if !prompt.metrics.isEmpty { entry["metrics"] = .object(prompt.metrics) }
            entries.append(.object(entry))
        }
        let payloadHash = SHA256.hex(SHA256.hash(payload))
        var top: JSONObject = [
            "compression": "zstd", "filter": .string(filter.rawValue), "payload_sha256": .string(payloadHash),
        ]
        if let model = file.model { top["model"] = try modelJSON(model) }
        top["prompts"] = .array(entries)
        if !file.metadata.isEmpty { top["metadata"] = .object(file.metadata) }
        let metadata: [UInt8]
        do {
            metadata = Array(try JSON.serialize(.object(top)).utf8)
        } catch {
            throw fail(.invalidValue, "metadata cannot be written as JSON: \(error.message)")
        }
        guard metadata.count <= PromptFile.maxMetadataSize else {
            throw fail(.metadataTooLarge, "metadata of \(metadata.count) bytes exceeds the \(PromptFile.maxMetadataSize)-byte cap")
        }

        var stored = payload
        if filter == .byteShuffle {
            var offset = 0
            for prompt in prompts {
                let length = prompt.tokens * prompt.width * prompt.dtype.size
                PayloadCodec.shuffle(&stored, offset: offset, length: length, size: prompt.dtype.size)
                offset += length
            }
        }
        let level: Int32 = stored.count <= 8 << 20 ? 19 : 3
        guard let frame = stored.withUnsafeBytes({ Zstd.compress($0, level: level) }) else {
            throw fail(.io, "zstd compression failed")
        }

        var out: [UInt8] = PromptFile.magic
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
        append(PromptFile.version)
        append(UInt32(0))
        append(UInt64(metadata.count))
        append(UInt64(payload.count))
        append(UInt64(frame.count))
        var hash = SHA256()
        hash.update(out)
        hash.update(metadata)
        out += hash.finalize()
        out += metadata
        out += frame
        return out
    }

    static func isSHA256(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (0x30 ... 0x39).contains($0) || (0x61 ... 0x66).contains($0) }
    }

    func modelJSON(_ model: ModelFingerprint) throws(SpromptError) -> JSONValue {
        guard !model.architecture.isEmpty,
              (1 ... PromptFile.maxDimension).contains(model.embeddingLength),
              (1 ... Int(Int32.max)).contains(model.layerCount), (1 ... Int(Int32.max)).contains(model.vocabSize)
        else { throw fail(.invalidValue, "the model fingerprint has an empty architecture or a size out of range") }
        for hash in [model.tokenizerHash, model.weightsHash].compactMap({ $0 }) where !Self.isSHA256(hash) {
            throw fail(.invalidValue, "the model fingerprint holds a hash that is not 64 lowercase hexadecimal digits")
        }
        var o: JSONObject = [
            "architecture": .string(model.architecture),
            "embedding_length": .int(Int64(model.embeddingLength)),
            "layer_count": .int(Int64(model.layerCount)),
            "vocab_size": .int(Int64(model.vocabSize)),
        ]
        if let hash = model.tokenizerHash { o["tokenizer_sha256"] = .string(hash) }
        if let sketch = model.sketch, let norms = model.sketchNorms, let hash = model.weightsHash {
            guard (1 ... PromptFile.maxSketch).contains(sketch.count), norms.count == sketch.count,
                  model.sketchVersion >= 1, sketch.allSatisfy(\.isFinite), norms.allSatisfy({ $0.isFinite && $0 >= 0 })
            else { throw fail(.invalidValue, "the model fingerprint's sketch is malformed") }
            o["weights"] = .object([
                "sketch_version": .int(Int64(model.sketchVersion)),
                "sketch": .array(sketch.map { .double($0) }),
                "norms": .array(norms.map { .double($0) }),
                "rows_sha256": .string(hash),
            ])
        }
        return .object(o)
    }
}
