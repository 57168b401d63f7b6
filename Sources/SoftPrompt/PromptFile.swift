import TensorIO

/// The storage type of a prompt's values in a `.sprompt` file.
public enum PromptDType: String, Sendable, CaseIterable {
    case f32, f16, bf16

    /// Bytes per value.
    public var size: Int { self == .f32 ? 4 : 2 }
}

/// Where a prompt goes in the model input.
public enum PromptPlacement: String, Sendable, CaseIterable {
    /// Before everything, BOS included (PEFT's placement).
    case prefix
}

/// One learned soft prompt: `tokens` vectors of `width` floats.
public struct SoftPrompt: Sendable, Equatable {
    /// The prompt's name, unique in its file.
    public var name: String
    /// The number of virtual tokens.
    public var tokens: Int
    /// The vector length (the model's embedding length).
    public var width: Int
    /// The vectors, (tokens, width) row-major. Always float32 in memory.
    public var vectors: [Float]
    /// The type the values are stored in; f16 and bf16 round on writing (to nearest, ties to even).
    public var dtype: PromptDType
    /// Where the prompt goes in the input.
    public var placement: PromptPlacement
    /// The text template the prompt was trained with; contains `{input}`.
    public var template: String?
    /// Free-form description of how the prompt was made (model path, data set hash, steps, …).
    public var provenance: JSONObject
    /// Free-form evaluation results.
    public var metrics: JSONObject

    /// Creates a prompt.
    /// - Parameters:
    ///   - name: A unique name (1–256 bytes of UTF-8, no control characters).
    ///   - vectors: `tokens × width` floats, row-major.
    ///   - width: The vector length; must divide `vectors.count`.
    ///   - dtype: The storage type in the file.
    ///   - template: The training template, containing `{input}`.
    ///   - provenance: How it was made.
    ///   - metrics: How well it does.
    public init(name: String, vectors: [Float], width: Int, dtype: PromptDType = .f32,
                template: String? = nil, provenance: JSONObject = [:], metrics: JSONObject = [:]) {
        precondition(width > 0 && vectors.count % width == 0,
                     "\(vectors.count) floats are not whole rows of width \(width)")
        self.name = name
        self.tokens = vectors.count / width
        self.width = width
        self.vectors = vectors
        self.dtype = dtype
        self.placement = .prefix
        self.template = template
        self.provenance = provenance
        self.metrics = metrics
    }

    /// How many values are NaN or infinite (readers accept them; writers refuse them).
    public var nonFiniteCount: Int { vectors.reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }

    /// The L2 norm of each of the `tokens` vectors.
    public var rowNorms: [Float] {
        (0 ..< tokens).map { t in
            var sum = 0.0
            for v in vectors[t * width ..< (t + 1) * width] { sum += Double(v) * Double(v) }
            return Float(sum.squareRoot())
        }
    }
}

/// A `.sprompt` file: one or more named soft prompts (a bank) and the fingerprint of the model they
/// were trained for. The format is specified in `Formats/sprompt.md`.
public struct PromptFile: Sendable {
    /// The model the prompts belong to; nil = unknown.
    public var model: ModelFingerprint?
    /// The prompts; names unique, at least one.
    public var prompts: [SoftPrompt]
    /// Free-form file-level extras.
    public var metadata: JSONObject

    /// Creates a file's contents.
    public init(model: ModelFingerprint?, prompts: [SoftPrompt], metadata: JSONObject = [:]) {
        self.model = model
        self.prompts = prompts
        self.metadata = metadata
    }

    // MARK: Constants of the format

    /// The first 8 bytes of every file: 0x89 then `SPROMPT`.
    public static let magic: [UInt8] = [0x89] + Array("SPROMPT".utf8)
    /// The format version this code reads and writes.
    public static let version: UInt32 = 1
    /// The size of the fixed header.
    public static let headerSize = 72
    /// The largest metadata block accepted (16 MiB).
    public static let maxMetadataSize = 16 << 20
    /// The largest uncompressed payload accepted (1 GiB).
    public static let maxPayloadSize = 1 << 30
    /// The largest number of virtual tokens, and the largest width, of one prompt.
    public static let maxDimension = 1 << 20
    /// The largest number of prompts in a bank.
    public static let maxPrompts = 65_536
    /// The most a zstd frame can expand: 128 KiB from a 4-byte RLE block.
    public static let maxExpansion = 32_768
    /// The largest number of sketch values accepted.
    static let maxSketch = 4096

    // MARK: Reading

    /// Reads and validates a file.
    /// - Parameter path: The file.
    /// - Returns: Its contents, values decoded to float32.
    /// - Throws: `SpromptError` naming the first rule the file breaks (kind `.io` when it cannot be read).
    public static func read(path: String) throws(SpromptError) -> PromptFile {
        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch {
            throw SpromptError(.io, FileError.reason(error, about: path), path: path)
        }
        return try decode(file.bytes, path: path)
    }

    /// Validates and decodes a file held in memory.
    /// - Parameters:
    ///   - bytes: The whole file.
    ///   - path: Named in errors.
    /// - Throws: `SpromptError` naming the first rule the bytes break.
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String?) throws(SpromptError) -> PromptFile {
        var reader = Reader(bytes: bytes, path: path)
        return try reader.decode()
    }

    /// Decodes a file held in an array. See `decode(_:path:)`.
    public static func decode(_ bytes: [UInt8], path: String? = nil) throws(SpromptError) -> PromptFile {
        let result: Result<PromptFile, SpromptError> = bytes.withUnsafeBytes { raw in
            Result { () throws(SpromptError) in try decode(raw, path: path) }
        }
        return try result.get()
    }

    /// Whether `bytes` start with the `.sprompt` magic.
    public static func hasMagic(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= magic.count && bytes.prefix(magic.count).elementsEqual(magic)
    }

    /// The prompt named `name`, or the only prompt when `name` is nil.
    /// - Throws: `SpromptError.Kind.promptNotFound`, listing the names, when there is no such prompt or
    ///   when `name` is nil and the bank holds several.
    public func prompt(named name: String?) throws(SpromptError) -> SoftPrompt {
        let names = prompts.map { "'\($0.name)'" }.joined(separator: ", ")
        if let name {
            if let found = prompts.first(where: { $0.name == name }) { return found }
            throw SpromptError(.promptNotFound, "no prompt named '\(name)' (the file holds \(names))")
        }
        if prompts.count == 1 { return prompts[0] }
        throw SpromptError(.promptNotFound, "the file holds \(prompts.count) prompts (\(names)); name one")
    }

    // MARK: Writing

    /// The filter the writer applies (byte shuffle shrinks f32 and bf16 prompts by 7–9 %).
    public static let defaultFilter = PayloadFilter.byteShuffle

    /// Encodes the file.
    /// - Returns: The file's bytes.
    /// - Throws: `SpromptError` when the contents break a rule: no prompts, duplicate or invalid
    ///   names, vectors that are not `tokens × width`, NaN or infinite values (or values that overflow
    ///   f16), a template without `{input}`, a width other than the fingerprint's, sizes over the caps.
    public func encode() throws(SpromptError) -> [UInt8] {
        try encode(filter: Self.defaultFilter)
    }

    /// Encodes the file with a chosen payload filter (tests and measurements).
    public func encode(filter: PayloadFilter) throws(SpromptError) -> [UInt8] {
        try Writer(file: self, filter: filter).encode()
    }

    /// Writes the file atomically (temporary file, fsync, rename).
    /// - Throws: `SpromptError` as `encode()`, or `.io` when the file cannot be written.
    public func write(to path: String) throws(SpromptError) {
        let bytes = try encode()
        do {
            try AtomicFile.write(to: path, bytes: bytes)
        } catch {
            throw SpromptError(.io, FileError.reason(error, about: path), path: path)
        }
    }
}

/// A reversible transform of the payload applied before compression.
public enum PayloadFilter: String, Sendable, CaseIterable {
    /// Bytes stored as they are.
    case none
    /// Within each prompt, byte 0 of every value, then byte 1, … (spec section 3.2).
    case byteShuffle = "byte_shuffle"
}

// MARK: - Payload helpers

enum PayloadCodec {
    /// Byte-shuffles `count` values of `size` bytes at `offset`.
    static func shuffle(_ bytes: inout [UInt8], offset: Int, length: Int, size: Int) {
        let n = length / size
        let source = Array(bytes[offset ..< offset + length])
        for i in 0 ..< n {
            for b in 0 ..< size { bytes[offset + b * n + i] = source[i * size + b] }
        }
    }

    /// Undoes `shuffle`.
    static func unshuffle(_ bytes: inout [UInt8], offset: Int, length: Int, size: Int) {
        let n = length / size
        let source = Array(bytes[offset ..< offset + length])
        for i in 0 ..< n {
            for b in 0 ..< size { bytes[offset + i * size + b] = source[b * n + i] }
        }
    }

    /// Little-endian encoding of `values` as `dtype`.
    static func encode(_ values: [Float], as dtype: PromptDType, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + values.count * dtype.size)
        for v in values {
            switch dtype {
            case .f32: withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 }
            case .f16: withUnsafeBytes(of: HalfFloat.floatToF16(v).littleEndian) { out += $0 }
            case .bf16: withUnsafeBytes(of: HalfFloat.floatToBF16(v).littleEndian) { out += $0 }
            }
        }
    }

    /// Decodes `count` values of `dtype` at `offset` (read with `loadUnaligned`).
    static func decode(_ bytes: UnsafeRawBufferPointer, offset: Int, count: Int, as dtype: PromptDType) -> [Float] {
        (0 ..< count).map { i in
            switch dtype {
            case .f32:
                return Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self)))
            case .f16:
                return HalfFloat.f16ToFloat(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 2 * i, as: UInt16.self)))
            case .bf16:
                return HalfFloat.bf16ToFloat(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 2 * i, as: UInt16.self)))
            }
        }
    }

    /// The most stored bytes accepted for `payloadSize` uncompressed bytes (more than zstd ever needs).
    static func maxStoredSize(_ payloadSize: Int) -> Int { payloadSize + payloadSize / 256 + 1024 }
}
