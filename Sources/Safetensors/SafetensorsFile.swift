import TensorIO

/// One tensor as described by a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Hashable {
    /// The tensor's name (its key in the header).
    public let name: String
    /// The element type.
    public let dtype: SafetensorsDType
    /// The dimensions, outermost first (row-major); `[]` for a scalar.
    public let shape: [Int]
    /// The tensor's bytes, relative to the start of the data section (`data_offsets`).
    public let dataOffsets: Range<Int>

    public init(name: String, dtype: SafetensorsDType, shape: [Int], dataOffsets: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }

    /// The number of elements (the product of `shape`; 1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
    /// The number of bytes.
    public var byteCount: Int { dataOffsets.count }
}

/// A safetensors file, validated on open, with zero-copy access to its tensors.
///
/// Layout: an 8-byte little-endian header length `N`, `N` bytes of JSON header, then the data
/// section. Opening reads and checks the header only (every rule of Formats/safetensors.md); no
/// byte of tensor data is read until asked for. Files are memory-mapped read-only.
///
/// ```swift
/// let file = try SafetensorsFile(path: "model.safetensors")
/// for info in file.tensors { print(info.name, info.dtype, info.shape) }
/// let weights = try file.floats(named: "lm_head.weight")
/// ```
public final class SafetensorsFile: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init; the bytes behind `bytes` are a
    // read-only mapping or a private copy, released only in deinit.

    /// The largest header we accept, in bytes (the reference implementation's cap).
    public static let maximumHeaderLength = 100_000_000

    /// The path the file was opened from (`"<memory>"` or the given name for in-memory data).
    public let path: String
    /// The header length `N` (padding included).
    public let headerLength: Int
    /// Absolute offset of the data section (`8 + N`).
    public var dataStart: Int { 8 + headerLength }
    /// The tensors in data order (by offset; empty tensors sharing an offset keep header order).
    public let tensors: [SafetensorsTensorInfo]
    /// The `__metadata__` entries in header order (empty when absent).
    public let metadata: [(key: String, value: String)]
    /// The whole file.
    public let bytes: UnsafeRawBufferPointer

    private let positions: [String: Int]
    private let mapped: MappedFile?
    private let owned: UnsafeMutableRawBufferPointer?

    /// Opens and validates the file at `path` (memory-mapped; tensor data is not read).
    /// - Parameter path: The file.
    /// - Throws: `SafetensorsError` (`.io` when the file cannot be opened or mapped, otherwise the
    ///   broken rule with its offset and tensor).
    public init(path: String) throws(SafetensorsError) {
        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch {
            throw SafetensorsError(.io, "cannot open: \(error)", path: path)
        }
        let header = try Self.parseHeader(file.bytes, path: path)
        self.path = path
        self.mapped = file
        self.owned = nil
        self.bytes = file.bytes
        self.headerLength = header.length
        self.tensors = header.tensors
        self.metadata = header.metadata
        self.positions = Self.positions(of: header.tensors)
    }

    /// Validates a safetensors file held in memory (the bytes are copied once).
    /// - Parameters:
    ///   - bytes: The whole file.
    ///   - name: What to call it in errors.
    /// - Throws: `SafetensorsError` for the broken rule.
    public init(bytes source: [UInt8], name: String = "<memory>") throws(SafetensorsError) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(source.count, 1), alignment: 16)
        source.withUnsafeBytes { copy.copyMemory(from: $0) }
        let view = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(copy)[0 ..< source.count])
        let header: Header
        do {
            header = try Self.parseHeader(view, path: name)
        } catch {
            copy.deallocate()
            throw error
        }
        self.path = name
        self.mapped = nil
        self.owned = copy
        self.bytes = view
        self.headerLength = header.length
        self.tensors = header.tensors
        self.metadata = header.metadata
        self.positions = Self.positions(of: header.tensors)
    }

    deinit { owned?.deallocate() }

    private static func positions(of tensors: [SafetensorsTensorInfo]) -> [String: Int] {
        var positions: [String: Int] = [:]
        for (i, info) in tensors.enumerated() { positions[info.name] = i }
        return positions
    }

    /// The metadata as a dictionary.
    public var metadataDictionary: [String: String] {
        Dictionary(metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    /// The size of the data section in bytes.
    public var dataSize: Int { bytes.count - dataStart }

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> SafetensorsTensorInfo? {
        positions[name].map { tensors[$0] }
    }

    /// The bytes of a tensor of this file, without copying.
    ///
    /// The view is valid only while this object is alive: keep a reference to the file (or use
    /// `withExtendedLifetime`) for as long as the view is used; `Array(...)` copies it out.
    /// - Parameter info: A tensor from `tensors` or `tensor(named:)` of this file.
    /// - Returns: A view of `info.byteCount` bytes, little-endian, row-major.
    public func data(for info: SafetensorsTensorInfo) -> UnsafeRawBufferPointer {
        guard let index = positions[info.name], tensors[index] == info else {
            preconditionFailure("tensor '\(info.name)' does not belong to \(path)")
        }
        return UnsafeRawBufferPointer(rebasing: bytes[(dataStart + info.dataOffsets.lowerBound) ..< (dataStart + info.dataOffsets.upperBound)])
    }

    /// The bytes of the tensor called `name`, without copying. Valid while this object is alive.
    /// - Throws: `SafetensorsError` `.tensorNotFound`.
    public func data(named name: String) throws(SafetensorsError) -> UnsafeRawBufferPointer {
        data(for: try info(name))
    }

    /// The elements of a float tensor (F32, F16, BF16, F64, F8_E4M3, F8_E5M2) as `Float`s.
    /// F64 values are rounded to the nearest float (beyond the float range: infinity).
    /// - Throws: `SafetensorsError` `.notFloatingPoint` for other dtypes.
    public func floats(for info: SafetensorsTensorInfo) throws(SafetensorsError) -> [Float] {
        let raw = data(for: info)
        let n = info.elementCount
        switch info.dtype {
        case .f32:
            return (0 ..< n).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        case .f16:
            return (0 ..< n).map { HalfFloat.f16ToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        case .bf16:
            return (0 ..< n).map { HalfFloat.bf16ToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        case .f64:
            return (0 ..< n).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))) }
        case .f8E4M3:
            return raw.map { Float8.e4m3ToFloat($0) }
        case .f8E5M2:
            return raw.map { Float8.e5m2ToFloat($0) }
        default:
            throw SafetensorsError(.notFloatingPoint, "tensor '\(info.name)' has dtype \(info.dtype.rawValue), not a float type",
                                   path: path, tensor: info.name)
        }
    }

    /// The elements of the float tensor called `name` as `Float`s (see `floats(for:)`).
    /// - Throws: `SafetensorsError` `.tensorNotFound` or `.notFloatingPoint`.
    public func floats(named name: String) throws(SafetensorsError) -> [Float] {
        try floats(for: try info(name))
    }

    private func info(_ name: String) throws(SafetensorsError) -> SafetensorsTensorInfo {
        guard let info = tensor(named: name) else {
            throw SafetensorsError(.tensorNotFound, "no tensor named '\(name)'", path: path, tensor: name)
        }
        return info
    }

    // MARK: Header validation

    struct Header {
        var length: Int
        var tensors: [SafetensorsTensorInfo]
        var metadata: [(key: String, value: String)]
    }

    /// Checks every rule of Formats/safetensors.md against `file` (the whole file's bytes),
    /// reading only the length prefix and the header.
    static func parseHeader(_ file: UnsafeRawBufferPointer, path: String) throws(SafetensorsError) -> Header {
        func fail(_ kind: SafetensorsError.Kind, _ message: String, at offset: Int?, tensor: String? = nil) -> SafetensorsError {
            SafetensorsError(kind, message, path: path, offset: offset, tensor: tensor)
        }
        guard file.count >= 8 else {
            throw fail(.fileTooSmall, "file of \(file.count) bytes is too small for a safetensors file (at least 8 bytes)", at: 0)
        }
        let declared = UInt64(littleEndian: file.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard declared <= UInt64(maximumHeaderLength) else {
            throw fail(.headerTooLarge, "header length \(declared) exceeds the \(maximumHeaderLength)-byte limit", at: 0)
        }
        let length = Int(declared)
        guard length <= file.count - 8 else {
            throw fail(.headerExceedsFile, "header length \(length) runs past the end of the \(file.count)-byte file", at: 0)
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: file[8 ..< 8 + length])
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw fail(.headerNotObject, "header must start with '{'", at: 8)
        }
        // Parse: a valid header nests 3 levels deep ({name: {shape: [...]}}); allow some slack so
        // deeper structures get a precise error below rather than a nesting error.
        let document: JSON.Document
        do {
            document = try JSON.parseDocument(headerBytes, options: .init(maxDepth: 8, recordTopLevelKeys: true))
        } catch {
            let kind: SafetensorsError.Kind = switch error.kind {
            case .invalidUTF8: .headerNotUTF8
            case .duplicateKey: .duplicateKey
            default: .headerNotJSON
            }
            let what = kind == .headerNotUTF8 ? "header is not valid UTF-8" : kind == .duplicateKey ? "header has a duplicate key" : "header is not valid JSON"
            throw fail(kind, "\(what): \(error.message)", at: 8 + error.offset)
        }
        guard case .object(let root) = document.value else {
            throw fail(.headerNotObject, "header must be a JSON object", at: 8)
        }

        var tensors: [SafetensorsTensorInfo] = []
        var metadata: [(key: String, value: String)] = []
        for (name, entry) in root {
            let at = 8 + (document.topLevelKeyOffsets[name] ?? 0)
            if name == "__metadata__" {
                guard case .object(let members) = entry else {
                    throw fail(.invalidMetadata, "'__metadata__' must be an object of strings", at: at)
                }
                for (key, value) in members {
                    guard case .string(let text) = value else {
                        throw fail(.invalidMetadata, "'__metadata__' value for '\(key)' must be a string", at: at)
                    }
                    metadata.append((key, text))
                }
                continue
            }
            tensors.append(try tensorInfo(name, entry, at: at, fail: fail))
        }

        // The data section must be covered exactly: contiguous from 0, no overlap, no gap, no
        // trailing bytes (no room for a second file format hidden inside).
        let dataStart = 8 + length
        let dataSize = file.count - dataStart
        let ordered = tensors.enumerated().sorted {
            ($0.element.dataOffsets.lowerBound, $0.element.dataOffsets.upperBound, $0.offset)
                < ($1.element.dataOffsets.lowerBound, $1.element.dataOffsets.upperBound, $1.offset)
        }.map(\.element)
        var covered = 0
        for info in ordered {
            let begin = info.dataOffsets.lowerBound
            if begin > covered {
                throw fail(.gapBetweenTensors,
                           "bytes \(covered)..<\(begin) of the data section belong to no tensor (tensor '\(info.name)' starts at \(begin))",
                           at: dataStart + covered, tensor: info.name)
            }
            if begin < covered {
                throw fail(.overlappingTensors,
                           "tensor '\(info.name)' starts at data byte \(begin), inside the previous tensor (which ends at \(covered))",
                           at: dataStart + begin, tensor: info.name)
            }
            if info.dataOffsets.upperBound > dataSize {
                throw fail(.truncatedData,
                           "tensor '\(info.name)' ends at data byte \(info.dataOffsets.upperBound) but the data section has only \(dataSize) bytes (truncated file?)",
                           at: file.count, tensor: info.name)
            }
            covered = info.dataOffsets.upperBound
        }
        if covered != dataSize {
            throw fail(.trailingData, "\(dataSize - covered) bytes after the last tensor belong to no tensor", at: dataStart + covered)
        }
        return Header(length: length, tensors: ordered, metadata: metadata)
    }

    private static func tensorInfo(
        _ name: String, _ entry: JSONValue, at: Int,
        fail: (SafetensorsError.Kind, String, Int?, String?) -> SafetensorsError
    ) throws(SafetensorsError) -> SafetensorsTensorInfo {
        guard case .object(let fields) = entry else {
            throw fail(.invalidTensorEntry, "entry of tensor '\(name)' must be an object with dtype, shape and data_offsets", at, name)
        }
        for key in fields.keys where !["dtype", "shape", "data_offsets"].contains(key) {
            throw fail(.invalidTensorEntry, "tensor '\(name)' has unknown field '\(key)' (only dtype, shape, data_offsets are allowed)", at, name)
        }
        guard let dtypeValue = fields["dtype"], let shapeValue = fields["shape"], let offsetsValue = fields["data_offsets"] else {
            let missing = ["dtype", "shape", "data_offsets"].first { fields[$0] == nil }!
            throw fail(.invalidTensorEntry, "tensor '\(name)' has no '\(missing)' field", at, name)
        }
        guard case .string(let dtypeName) = dtypeValue else {
            throw fail(.invalidTensorEntry, "dtype of tensor '\(name)' must be a string", at, name)
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw fail(.unsupportedDType,
                       "dtype '\(dtypeName)' of tensor '\(name)' is not supported; supported: \(SafetensorsDType.supportedNames)", at, name)
        }
        guard case .array(let dims) = shapeValue else {
            throw fail(.invalidShape, "shape of tensor '\(name)' must be an array of non-negative integers", at, name)
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for dim in dims {
            // Integers beyond 2^63 arrive as doubles: refused here with the others.
            guard case .int(let value) = dim, value >= 0 else {
                throw fail(.invalidShape, "shape of tensor '\(name)' has an entry that is not a non-negative integer below 2^63", at, name)
            }
            shape.append(Int(value))
        }
        guard let count = Checked.product(shape), let size = Checked.mul(count, dtype.byteSize) else {
            throw fail(.sizeOverflow, "shape \(shape) of tensor '\(name)' overflows the element count or byte size", at, name)
        }
        guard case .array(let offsets) = offsetsValue, offsets.count == 2,
              case .int(let begin) = offsets[0], case .int(let end) = offsets[1],
              begin >= 0, end >= 0
        else {
            throw fail(.invalidDataOffsets, "data_offsets of tensor '\(name)' must be [begin, end] with two non-negative integers", at, name)
        }
        guard begin <= end else {
            throw fail(.invalidDataOffsets, "data_offsets of tensor '\(name)' end (\(end)) before they begin (\(begin))", at, name)
        }
        guard end - begin == Int64(size) else {
            throw fail(.tensorSizeMismatch,
                       "tensor '\(name)' spans \(end - begin) bytes but \(dtype.rawValue) \(shape) needs \(size)", at, name)
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: Int(begin) ..< Int(end))
    }
}
