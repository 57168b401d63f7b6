import Quants
import TensorIO

/// A validated, memory-mapped GGUF file (version 2 or 3, little-endian).
///
/// Opening maps the file once, read-only, and reads only the header, the metadata and the tensor
/// infos; tensor data is never touched until you read it through `data(for:)`, which returns a
/// zero-copy view of the mapping. Every count, length and offset in the file is checked before it
/// is used (see `Formats/gguf.md`), so a malformed or hostile file fails with a `GGUFError` in
/// bounded time and memory. Instances are immutable and safe to share between threads.
///
/// ```swift
/// let file = try GGUFFile(path: "model.gguf")
/// let layers = file.int("llama.block_count")
/// let q = file.tensor(named: "blk.0.attn_q.weight")!
/// let bytes = file.data(for: q)   // valid while `file` is alive
/// ```
public final class GGUFFile: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init; the mapping is read-only.

    /// The path the file was opened from (nil for in-memory input).
    public let path: String?
    /// The GGUF version (2 or 3; they share one layout).
    public let version: UInt32
    /// The alignment of the data section and of tensor offsets (`general.alignment`, default 32).
    public let alignment: Int
    /// The offset from the start of the file of the data section that tensor offsets are relative to.
    public let dataOffset: Int
    /// The metadata entries, in file order.
    public let metadata: [GGUFMetadataEntry]
    /// The tensors, in file order.
    public let tensors: [GGUFTensorInfo]
    /// Whether the tensors are stored back to back in file order, each padded to the alignment,
    /// starting at offset 0: the layout ggml writes and requires. Files where this is false are
    /// still valid here (aligned, in bounds, non-overlapping) but llama.cpp refuses them.
    public let isCanonicallyPacked: Bool

    let storage: ByteStorage
    private let keyIndex: [String: Int]
    private let tensorIndex: [String: Int]

    /// Opens and validates the GGUF file at `path`.
    /// - Parameter path: The file to map.
    /// - Throws: `GGUFError`: `.file` when the file cannot be opened or mapped, otherwise the first
    ///   violation of the format found.
    public convenience init(path: String) throws(GGUFError) {
        let mapping: MappedFile
        do {
            mapping = try MappedFile(path: path)
        } catch let error as FileError {
            throw GGUFError(.file(error), path: path)
        } catch {
            throw GGUFError(.file(FileError(operation: "open", path: path, errno: 0, detail: "\(error)")), path: path)
        }
        try self.init(storage: ByteStorage(mapping: mapping), path: path)
    }

    /// Parses and validates GGUF bytes held in memory (they are copied once).
    /// - Parameter bytes: A complete GGUF file.
    /// - Throws: `GGUFError` describing the first violation of the format found.
    public convenience init(bytes: [UInt8]) throws(GGUFError) {
        try self.init(storage: ByteStorage(copying: bytes), path: nil)
    }

    private init(storage: ByteStorage, path: String?) throws(GGUFError) {
        var parser = Parser(storage: storage, path: path)
        let parsed = try parser.parse()
        self.storage = storage
        self.path = path
        version = parsed.version
        alignment = parsed.alignment
        dataOffset = parsed.dataOffset
        metadata = parsed.metadata
        tensors = parsed.tensors
        isCanonicallyPacked = parsed.isCanonicallyPacked
        keyIndex = parsed.keyIndex
        tensorIndex = parsed.tensorIndex
    }

    /// The size of the file in bytes.
    public var fileSize: Int { storage.bytes.count }

    /// The value of metadata key `key`, or nil when absent.
    public subscript(key: String) -> GGUFValue? { value(forKey: key) }

    /// The value of metadata key `key`, or nil when absent.
    public func value(forKey key: String) -> GGUFValue? {
        keyIndex[key].map { metadata[$0].value }
    }

    /// A STRING value, decoded as UTF-8 (ill-formed sequences replaced by U+FFFD); nil when the key
    /// is absent or holds another type.
    public func string(_ key: String) -> String? { value(forKey: key)?.stringValue }

    /// An integer value of any of the eight integer types, when it fits in an `Int`.
    public func int(_ key: String) -> Int? { value(forKey: key)?.intValue }

    /// A FLOAT32 or FLOAT64 value, as `Double`.
    public func float(_ key: String) -> Double? { value(forKey: key)?.doubleValue }

    /// A BOOL value.
    public func bool(_ key: String) -> Bool? { value(forKey: key)?.boolValue }

    /// An ARRAY value.
    public func array(_ key: String) -> GGUFArray? { value(forKey: key)?.arrayValue }

    /// An array of strings, every element decoded; nil when absent or not a string array.
    public func stringArray(_ key: String) -> [String]? { array(key)?.strings() }

    /// The tensor named `name`, or nil.
    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The bytes of a tensor's data: a zero-copy view of the mapping, valid while this object is
    /// alive.
    /// - Precondition: `tensor` is one of this file's `tensors`.
    public func data(for tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        precondition(tensorIndex[tensor.name].map { tensors[$0] == tensor } == true,
                     "tensor '\(tensor.name)' does not belong to this GGUF file")
        return UnsafeRawBufferPointer(
            rebasing: storage.bytes[tensor.absoluteOffset ..< tensor.absoluteOffset + tensor.byteCount])
    }
}

// MARK: - Parsing

/// The result of parsing, moved into `GGUFFile`.
private struct Parsed {
    var version: UInt32 = 0
    var alignment = GGUFLimits.defaultAlignment
    var dataOffset = 0
    var metadata: [GGUFMetadataEntry] = []
    var tensors: [GGUFTensorInfo] = []
    var isCanonicallyPacked = true
    var keyIndex: [String: Int] = [:]
    var tensorIndex: [String: Int] = [:]
}

/// A tensor info as read, before the data section's position is known.
private struct RawTensorInfo {
    var name: String
    var type: GGMLType
    var shape: [Int]
    var elements: Int
    var bytes: Int
    var offset: UInt64
    /// Where the offset field is, for error messages.
    var offsetField: Int
}

/// Minimum bytes of one metadata entry (key length, one key byte, type, one value byte) and of
/// one tensor info (name length, n_dims, type, offset): capacity reservations never exceed what
/// the remaining bytes could hold.
private let minimumEntrySize = 8 + 1 + 4 + 1
private let minimumTensorInfoSize = 8 + 4 + 4 + 8

private struct Parser {
    let storage: ByteStorage
    let path: String?
    var cursor: ByteCursor
    /// The key or tensor being read, attached to errors.
    var currentKey: String?
    var currentTensor: String?

    init(storage: ByteStorage, path: String?) {
        self.storage = storage
        self.path = path
        cursor = ByteCursor(storage.bytes)
    }

    // MARK: Errors and bounded reads

    func fail(_ kind: GGUFError.Kind, at offset: Int) -> GGUFError {
        GGUFError(kind, offset: offset, key: currentKey, tensor: currentTensor, path: path)
    }

    func truncated(_ error: OutOfBounds, _ section: GGUFError.Section) -> GGUFError {
        fail(.truncated(section, needed: error.needed, remaining: error.remaining), at: error.offset)
    }

    mutating func u32(_ section: GGUFError.Section) throws(GGUFError) -> UInt32 {
        do { return try cursor.u32() } catch { throw truncated(error, section) }
    }

    mutating func u64(_ section: GGUFError.Section) throws(GGUFError) -> UInt64 {
        do { return try cursor.u64() } catch { throw truncated(error, section) }
    }

    mutating func i64(_ section: GGUFError.Section) throws(GGUFError) -> Int64 {
        do { return try cursor.i64() } catch { throw truncated(error, section) }
    }

    mutating func slice(_ count: Int, _ section: GGUFError.Section) throws(GGUFError) -> UnsafeRawBufferPointer {
        do { return try cursor.slice(count) } catch { throw truncated(error, section) }
    }

    /// Reads a length-prefixed name (key or tensor name) of at most `limit` bytes.
    mutating func name(limit: Int, _ section: GGUFError.Section) throws(GGUFError) -> String {
        let start = cursor.offset
        let length = try u64(section)
        if length > UInt64(limit) { throw fail(.stringTooLong(length: length, limit: limit), at: start) }
        if section == .key && length == 0 { throw fail(.emptyKey, at: start) }
        let bytes = try slice(Int(length), section)
        do {
            return try GGUFRules.decodeName(bytes)
        } catch {
            throw fail(error.kind, at: start + 8 + error.index)
        }
    }

    // MARK: File

    mutating func parse() throws(GGUFError) -> Parsed {
        var out = Parsed()
        let magic = try slice(4, .header)
        if !magic.elementsEqual("GGUF".utf8) { throw fail(.badMagic(Array(magic)), at: 0) }

        let version = try u32(.header)
        switch version {
        case 2, 3: break
        case _ where version != 0 && version & 0xFFFF == 0: throw fail(.bigEndian(version: version), at: 4)
        default: throw fail(.unsupportedVersion(version), at: 4)
        }
        out.version = version

        let tensorCount = try u64(.header)
        if tensorCount > UInt64(GGUFLimits.maxTensorCount) { throw fail(.tooManyTensors(tensorCount), at: 8) }
        let keyCount = try u64(.header)
        if keyCount > UInt64(GGUFLimits.maxKeyCount) { throw fail(.tooManyKeys(keyCount), at: 16) }

        // Metadata.
        out.metadata.reserveCapacity(min(Int(keyCount), cursor.remaining / minimumEntrySize))
        var valueTypeOffsets: [Int] = []
        valueTypeOffsets.reserveCapacity(out.metadata.capacity)
        for _ in 0 ..< Int(keyCount) {
            let entryStart = cursor.offset
            currentKey = nil
            let key = try name(limit: GGUFLimits.maxKeyLength, .key)
            currentKey = key
            if out.keyIndex[key] != nil { throw fail(.duplicateKey, at: entryStart) }
            valueTypeOffsets.append(cursor.offset)
            let value = try self.value()
            out.keyIndex[key] = out.metadata.count
            out.metadata.append(GGUFMetadataEntry(key: key, value: value))
        }
        currentKey = nil

        // Alignment.
        if let index = out.keyIndex["general.alignment"] {
            currentKey = "general.alignment"
            guard case .uint32(let value) = out.metadata[index].value else {
                throw fail(.badAlignmentType(out.metadata[index].value.type), at: valueTypeOffsets[index])
            }
            if !GGUFRules.isPowerOfTwo(UInt64(value)) {
                throw fail(.alignmentNotPowerOfTwo(UInt64(value)), at: valueTypeOffsets[index] + 4)
            }
            out.alignment = Int(value)
            currentKey = nil
        }

        // Tensor infos.
        var infos: [RawTensorInfo] = []
        infos.reserveCapacity(min(Int(tensorCount), cursor.remaining / minimumTensorInfoSize))
        for _ in 0 ..< Int(tensorCount) {
            let infoStart = cursor.offset
            currentTensor = nil
            let tensorName = try name(limit: GGUFLimits.maxTensorNameLength, .tensorInfo)
            currentTensor = tensorName
            if out.tensorIndex[tensorName] != nil { throw fail(.duplicateTensorName, at: infoStart) }
            out.tensorIndex[tensorName] = infos.count
            infos.append(try tensorInfo(name: tensorName, alignment: out.alignment))
        }
        currentTensor = nil

        // Data section: starts at the next multiple of the alignment after the tensor infos. With no
        // tensors the padding may be missing (as ggml allows).
        let infosEnd = cursor.offset
        let fileSize = storage.bytes.count
        guard let alignedStart = Checked.alignUp(infosEnd, out.alignment) else {
            throw fail(.truncated(.tensorData, needed: out.alignment, remaining: fileSize - infosEnd), at: infosEnd)
        }
        if alignedStart > fileSize {
            if !infos.isEmpty {
                throw fail(.truncated(.tensorData, needed: alignedStart - infosEnd, remaining: fileSize - infosEnd),
                           at: infosEnd)
            }
            out.dataOffset = infosEnd
        } else {
            out.dataOffset = alignedStart
        }

        try placeTensors(infos, into: &out)
        return out
    }

    // MARK: Metadata values

    /// Reads a value type and the value that follows it.
    mutating func value() throws(GGUFError) -> GGUFValue {
        let typeOffset = cursor.offset
        let typeID = try u32(.value)
        guard let type = GGUFValueType(rawValue: typeID) else { throw fail(.unknownValueType(typeID), at: typeOffset) }
        switch type {
        case .array: return .array(try array())
        case .string: return .string(GGUFString(bytes: Array(try string())))
        default: return try scalar(type)
        }
    }

    /// Reads a fixed-size value of `type`.
    mutating func scalar(_ type: GGUFValueType) throws(GGUFError) -> GGUFValue {
        let start = cursor.offset
        let raw = try slice(type.fixedSize!, .value)
        switch type {
        case .uint8: return .uint8(._ggufLoad(from: raw, at: 0))
        case .int8: return .int8(._ggufLoad(from: raw, at: 0))
        case .uint16: return .uint16(._ggufLoad(from: raw, at: 0))
        case .int16: return .int16(._ggufLoad(from: raw, at: 0))
        case .uint32: return .uint32(._ggufLoad(from: raw, at: 0))
        case .int32: return .int32(._ggufLoad(from: raw, at: 0))
        case .float32: return .float32(._ggufLoad(from: raw, at: 0))
        case .uint64: return .uint64(._ggufLoad(from: raw, at: 0))
        case .int64: return .int64(._ggufLoad(from: raw, at: 0))
        case .float64: return .float64(._ggufLoad(from: raw, at: 0))
        case .bool:
            if raw[0] > 1 { throw fail(.invalidBool(raw[0]), at: start) }
            return .bool(raw[0] == 1)
        case .string, .array: preconditionFailure("not a fixed-size type")
        }
    }

    /// Reads a length-prefixed string value (any bytes; UTF-8 is not enforced for values).
    mutating func string() throws(GGUFError) -> UnsafeRawBufferPointer {
        let start = cursor.offset
        let length = try u64(.value)
        if length > UInt64(GGUFLimits.maxStringLength) {
            throw fail(.stringTooLong(length: length, limit: GGUFLimits.maxStringLength), at: start)
        }
        return try slice(Int(length), .value)
    }

    /// Reads an array's element type, count and elements, indexing string elements without
    /// decoding them.
    mutating func array() throws(GGUFError) -> GGUFArray {
        let typeOffset = cursor.offset
        let typeID = try u32(.value)
        guard let elementType = GGUFValueType(rawValue: typeID) else {
            throw fail(.unknownValueType(typeID), at: typeOffset)
        }
        if elementType == .array { throw fail(.nestedArray, at: typeOffset) }
        let countOffset = cursor.offset
        let declared = try u64(.value)
        if declared > UInt64(GGUFLimits.maxArrayCount) { throw fail(.arrayTooLong(declared), at: countOffset) }
        let count = Int(declared)  // <= 2^30, so products below cannot overflow
        let payloadStart = cursor.offset

        if let size = elementType.fixedSize {
            let raw = try slice(count * size, .value)
            if elementType == .bool, let bad = raw.firstIndex(where: { $0 > 1 }) {
                throw fail(.invalidBool(raw[bad]), at: payloadStart + bad)
            }
            return GGUFArray(elementType: elementType, count: count, storage: storage,
                             payload: payloadStart ..< cursor.offset, starts: [])
        }

        // Strings: each needs at least its 8-byte length, so check that much remains before
        // reserving the offsets table.
        if count * 8 > cursor.remaining {
            throw fail(.truncated(.value, needed: count * 8, remaining: cursor.remaining), at: payloadStart)
        }
        var starts: [Int] = []
        starts.reserveCapacity(count + 1)
        for _ in 0 ..< count {
            starts.append(cursor.offset - payloadStart)
            _ = try string()
        }
        starts.append(cursor.offset - payloadStart)
        return GGUFArray(elementType: .string, count: count, storage: storage,
                         payload: payloadStart ..< cursor.offset, starts: starts)
    }

    // MARK: Tensors

    /// Reads the rest of a tensor info after its name.
    mutating func tensorInfo(name: String, alignment: Int) throws(GGUFError) -> RawTensorInfo {
        let dimsCountOffset = cursor.offset
        let dimsCount = try u32(.tensorInfo)
        if dimsCount > UInt32(GGUFLimits.maxDimensions) {
            throw fail(.tooManyDimensions(UInt64(dimsCount)), at: dimsCountOffset)
        }
        var shape: [Int] = []
        shape.reserveCapacity(Int(dimsCount))
        for index in 0 ..< Int(dimsCount) {
            let dimOffset = cursor.offset
            let dim = try i64(.tensorInfo)
            if dim < 0 { throw fail(.negativeDimension(index: index, value: dim), at: dimOffset) }
            shape.append(Int(dim))
        }
        let typeOffset = cursor.offset
        let typeID = try u32(.tensorInfo)
        let layout: (elements: Int, bytes: Int)
        do throws(ShapeProblem) {
            guard let type = GGMLType(rawValue: typeID) else { throw ShapeProblem(kind: .unknownTensorType(typeID)) }
            layout = try GGUFRules.layout(type: type, shape: shape)
        } catch {
            let at = error.kind == .elementCountOverflow ? dimsCountOffset + 4 : typeOffset
            throw fail(error.kind, at: at)
        }
        let offsetField = cursor.offset
        let offset = try u64(.tensorInfo)
        if offset % UInt64(alignment) != 0 {
            throw fail(.misalignedOffset(offset: offset, alignment: alignment), at: offsetField)
        }
        return RawTensorInfo(name: name, type: GGMLType(rawValue: typeID)!, shape: shape,
                             elements: layout.elements, bytes: layout.bytes, offset: offset, offsetField: offsetField)
    }

    /// Checks that every tensor lies inside the data section and that no two overlap, then builds
    /// the public tensor infos.
    mutating func placeTensors(_ infos: [RawTensorInfo], into out: inout Parsed) throws(GGUFError) {
        let available = storage.bytes.count - out.dataOffset
        out.tensors.reserveCapacity(infos.count)
        var packedEnd = 0
        for info in infos {
            currentTensor = info.name
            // offset <= available and bytes <= available - offset, without overflow.
            guard info.offset <= UInt64(available), info.bytes <= available - Int(info.offset) else {
                throw fail(.offsetOutOfBounds(offset: info.offset, byteCount: info.bytes, available: available),
                           at: info.offsetField)
            }
            let offset = Int(info.offset)
            if offset != packedEnd { out.isCanonicallyPacked = false }
            // Cannot overflow: offset + bytes <= available, and padding adds less than the alignment.
            packedEnd = Checked.alignUp(offset + info.bytes, out.alignment) ?? Int.max
            out.tensors.append(GGUFTensorInfo(
                name: info.name, type: info.type, shape: info.shape, elementCount: info.elements,
                byteCount: info.bytes, offset: offset, absoluteOffset: out.dataOffset + offset))
        }
        currentTensor = nil

        // Overlaps: sort the non-empty ranges by start and compare neighbours. Canonically packed
        // files are sorted already and cannot overlap.
        if out.isCanonicallyPacked { return }
        let order = infos.indices.filter { infos[$0].bytes > 0 }.sorted {
            (infos[$0].offset, $0) < (infos[$1].offset, $1)
        }
        for (previous, current) in zip(order, order.dropFirst()) {
            let a = out.tensors[previous], b = out.tensors[current]
            if a.offset + a.byteCount > b.offset {
                currentTensor = b.name
                throw fail(.overlappingTensors(other: a.name), at: infos[current].offsetField)
            }
        }
    }
}
