import Quants
import TensorIO

/// Builds a GGUF version 3 file: metadata in order, then tensors in order, written atomically.
///
/// The writer enforces the reader's rules as entries are added (unique, well-formed keys and
/// tensor names, shapes and types ggml accepts, data of exactly the right size), so every file it
/// writes opens with `GGUFFile`. Tensor offsets are the running sum of the padded tensor sizes,
/// the layout ggml and gguf-py write.
///
/// ```swift
/// var writer = GGUFWriter()
/// try writer.addMetadata("general.architecture", .string("llama"))
/// try writer.addTensor(name: "w", type: .f32, shape: [4, 2], bytes: weightBytes)
/// try writer.write(to: "out.gguf")
/// ```
public struct GGUFWriter {
    /// Where a tensor's bytes come from when the file is written.
    private enum Source {
        case bytes([UInt8])
        case file(GGUFFile, GGUFTensorInfo)
        case stream((_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void)
    }

    private struct Tensor {
        var name: String
        var type: GGMLType
        var shape: [Int]
        var byteCount: Int
        var source: Source
    }

    /// The metadata added so far, in order.
    public private(set) var metadata: [GGUFMetadataEntry] = []
    /// The alignment of the data section and tensor offsets (from `general.alignment`, default 32).
    public private(set) var alignment: Int = GGUFLimits.defaultAlignment
    private var keys: Set<String> = []
    private var tensors: [Tensor] = []
    private var tensorNames: Set<String> = []

    /// A writer with the default alignment of 32 (no `general.alignment` entry is written).
    public init() {}

    /// A writer whose first metadata entry is `general.alignment` = `alignment`.
    /// - Throws: `GGUFError` `.alignmentNotPowerOfTwo` unless `alignment` is a power of two that
    ///   fits in 32 bits.
    public init(alignment: Int) throws(GGUFError) {
        guard alignment > 0, alignment <= Int(UInt32.max) else {
            throw GGUFError(.alignmentNotPowerOfTwo(UInt64(max(0, alignment))), key: "general.alignment")
        }
        try addMetadata("general.alignment", .uint32(UInt32(alignment)))
    }

    /// A writer holding all of `file`'s metadata and tensors, in order. Writing it reproduces the
    /// file's content as version 3 with canonical packing; the file is kept alive until then.
    /// - Throws: never for a file that `GGUFFile` accepted; `GGUFError` otherwise.
    public init(copying file: GGUFFile) throws(GGUFError) {
        for entry in file.metadata { try addMetadata(entry.key, entry.value) }
        for info in file.tensors {
            try add(Tensor(name: info.name, type: info.type, shape: info.shape, byteCount: info.byteCount,
                           source: .file(file, info)), supplied: info.byteCount)
        }
    }

    /// The number of tensors added so far.
    public var tensorCount: Int { tensors.count }

    /// Appends a metadata entry. Adding `general.alignment` (a power-of-two UINT32) sets the alignment.
    /// - Throws: `GGUFError`: `.emptyKey`, `.stringTooLong` (key or string value), `.embeddedNUL`,
    ///   `.duplicateKey`, `.arrayTooLong`, `.badAlignmentType`, `.alignmentNotPowerOfTwo`.
    public mutating func addMetadata(_ key: String, _ value: GGUFValue) throws(GGUFError) {
        func fail(_ kind: GGUFError.Kind) -> GGUFError { GGUFError(kind, key: key) }
        let keyBytes = Array(key.utf8)
        if keyBytes.isEmpty { throw fail(.emptyKey) }
        if keyBytes.count > GGUFLimits.maxKeyLength {
            throw fail(.stringTooLong(length: UInt64(keyBytes.count), limit: GGUFLimits.maxKeyLength))
        }
        if keyBytes.contains(0) { throw fail(.embeddedNUL) }
        if keys.contains(key) { throw fail(.duplicateKey) }
        switch value {
        case .string(let string) where string.bytes.count > GGUFLimits.maxStringLength:
            throw fail(.stringTooLong(length: UInt64(string.bytes.count), limit: GGUFLimits.maxStringLength))
        case .array(let array):
            if array.count > GGUFLimits.maxArrayCount { throw fail(.arrayTooLong(UInt64(array.count))) }
            if array.elementType == .string,
               let long = array.indices.first(where: { array.starts[$0 + 1] - array.starts[$0] - 8 > GGUFLimits.maxStringLength }) {
                let length = array.starts[long + 1] - array.starts[long] - 8
                throw fail(.stringTooLong(length: UInt64(length), limit: GGUFLimits.maxStringLength))
            }
        default:
            break
        }
        if key == "general.alignment" {
            guard case .uint32(let alignment) = value else { throw fail(.badAlignmentType(value.type)) }
            if !GGUFRules.isPowerOfTwo(UInt64(alignment)) { throw fail(.alignmentNotPowerOfTwo(UInt64(alignment))) }
            self.alignment = Int(alignment)
        }
        keys.insert(key)
        metadata.append(GGUFMetadataEntry(key: key, value: value))
    }

    /// Appends a tensor whose data is `bytes`.
    /// - Parameters:
    ///   - name: A unique name of at most 63 bytes without NUL bytes.
    ///   - type: The element type.
    ///   - shape: Dimensions in ggml order (`shape[0]` is the row length, a multiple of the
    ///     type's block size); at most 4, none negative.
    ///   - bytes: The tensor's data, exactly as many bytes as the type and shape need.
    /// - Throws: `GGUFError` naming the rule broken (see `Formats/gguf.md`).
    public mutating func addTensor(name: String, type: GGMLType, shape: [Int], bytes: [UInt8]) throws(GGUFError) {
        let byteCount = try checkedByteCount(name: name, type: type, shape: shape)
        try add(Tensor(name: name, type: type, shape: shape, byteCount: byteCount, source: .bytes(bytes)),
                supplied: bytes.count)
    }

    /// Appends a tensor copied, when the file is written, from a tensor of an open GGUF file (the
    /// file is kept alive until then; nothing is copied now).
    /// - Parameters:
    ///   - name: The new name (defaults to the source tensor's).
    ///   - tensor: One of `file.tensors`.
    ///   - file: The file holding it.
    /// - Throws: `GGUFError` when the name is refused.
    public mutating func addTensor(name: String? = nil, copying tensor: GGUFTensorInfo, of file: GGUFFile) throws(GGUFError) {
        precondition(file.tensor(named: tensor.name) == tensor, "tensor '\(tensor.name)' does not belong to the file")
        let name = name ?? tensor.name
        try add(Tensor(name: name, type: tensor.type, shape: tensor.shape, byteCount: tensor.byteCount,
                       source: .file(file, tensor)), supplied: tensor.byteCount)
    }

    /// Appends a tensor whose data is produced while the file is written, so that a large tensor
    /// need not exist in memory all at once.
    /// - Parameters:
    ///   - name: A unique name of at most 63 bytes without NUL bytes.
    ///   - type: The element type.
    ///   - shape: Dimensions in ggml order.
    ///   - produce: Called once during `write(to:)`; it must pass the tensor's bytes, in order, to
    ///     `emit` in one or more pieces totalling exactly the tensor's byte count (else the write
    ///     fails with `.dataSizeMismatch` and the destination is untouched).
    /// - Throws: `GGUFError` when the name, type or shape is refused.
    public mutating func addTensor(
        name: String, type: GGMLType, shape: [Int],
        produce: @escaping (_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) throws(GGUFError) {
        let byteCount = try checkedByteCount(name: name, type: type, shape: shape)
        try add(Tensor(name: name, type: type, shape: shape, byteCount: byteCount, source: .stream(produce)),
                supplied: byteCount)
    }

    private func checkedByteCount(name: String, type: GGMLType, shape: [Int]) throws(GGUFError) -> Int {
        do {
            return try GGUFRules.layout(type: type, shape: shape).bytes
        } catch {
            throw GGUFError(error.kind, tensor: name)
        }
    }

    private mutating func add(_ tensor: Tensor, supplied: Int) throws(GGUFError) {
        func fail(_ kind: GGUFError.Kind) -> GGUFError { GGUFError(kind, tensor: tensor.name) }
        let nameBytes = Array(tensor.name.utf8)
        if nameBytes.count > GGUFLimits.maxTensorNameLength {
            throw fail(.stringTooLong(length: UInt64(nameBytes.count), limit: GGUFLimits.maxTensorNameLength))
        }
        if nameBytes.contains(0) { throw fail(.embeddedNUL) }
        if tensorNames.contains(tensor.name) { throw fail(.duplicateTensorName) }
        if tensors.count >= GGUFLimits.maxTensorCount { throw fail(.tooManyTensors(UInt64(tensors.count + 1))) }
        if supplied != tensor.byteCount { throw fail(.dataSizeMismatch(expected: tensor.byteCount, actual: supplied)) }
        tensorNames.insert(tensor.name)
        tensors.append(tensor)
    }

    // MARK: Output

    /// Writes the file atomically: to a temporary file beside `path`, fsynced, then renamed over
    /// `path`. On any failure `path` is left as it was.
    /// - Throws: `GGUFError` (`.file` for OS failures, `.dataSizeMismatch` for a producer that
    ///   emitted the wrong number of bytes), or any error a producer throws.
    public func write(to path: String) throws {
        do {
            try AtomicFile.write(to: path) { file in
                try emit { try file.write($0) }
            }
        } catch let error as FileError {
            throw GGUFError(.file(error), path: path)
        }
    }

    /// The complete file as bytes (for small files and tests).
    /// - Throws: as `write(to:)`, minus OS failures.
    public func serialized() throws -> [UInt8] {
        var out: [UInt8] = []
        try emit { out.append(contentsOf: $0) }
        return out
    }

    /// Streams the file to `sink`.
    private func emit(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var header: [UInt8] = []
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { header.append(contentsOf: $0) }
        }
        func appendString(_ bytes: some Collection<UInt8>) {
            append(UInt64(bytes.count))
            header.append(contentsOf: bytes)
        }

        header.append(contentsOf: "GGUF".utf8)
        append(UInt32(3))
        append(UInt64(tensors.count))
        append(UInt64(metadata.count))
        for entry in metadata {
            appendString(entry.key.utf8)
            append(entry.value.type.rawValue)
            switch entry.value {
            case .uint8(let v): append(v)
            case .int8(let v): append(v)
            case .uint16(let v): append(v)
            case .int16(let v): append(v)
            case .uint32(let v): append(v)
            case .int32(let v): append(v)
            case .float32(let v): append(v.bitPattern)
            case .bool(let v): append(UInt8(v ? 1 : 0))
            case .string(let v): appendString(v.bytes)
            case .uint64(let v): append(v)
            case .int64(let v): append(v)
            case .float64(let v): append(v.bitPattern)
            case .array(let array):
                append(array.elementType.rawValue)
                append(UInt64(array.count))
                array.withUnsafeBytes { header.append(contentsOf: $0) }
            }
        }
        var offset = 0
        for tensor in tensors {
            appendString(tensor.name.utf8)
            append(UInt32(tensor.shape.count))
            for dim in tensor.shape { append(Int64(dim)) }
            append(tensor.type.rawValue)
            append(UInt64(offset))
            guard let next = Checked.alignUp(tensor.byteCount, alignment).flatMap({ Checked.add(offset, $0) }) else {
                throw GGUFError(.byteSizeOverflow, tensor: tensor.name)
            }
            offset = next
        }
        header.append(contentsOf: repeatElement(0, count: padding(header.count)))
        try header.withUnsafeBytes { try sink($0) }

        let zeros = [UInt8](repeating: 0, count: alignment)
        for tensor in tensors {
            switch tensor.source {
            case .bytes(let bytes):
                try bytes.withUnsafeBytes { try sink($0) }
            case .file(let file, let info):
                try withExtendedLifetime(file) { try sink(file.data(for: info)) }
            case .stream(let produce):
                var emitted = 0
                try produce { piece in
                    emitted += piece.count
                    if emitted > tensor.byteCount {
                        throw GGUFError(.dataSizeMismatch(expected: tensor.byteCount, actual: emitted), tensor: tensor.name)
                    }
                    try sink(piece)
                }
                if emitted != tensor.byteCount {
                    throw GGUFError(.dataSizeMismatch(expected: tensor.byteCount, actual: emitted), tensor: tensor.name)
                }
            }
            let pad = padding(tensor.byteCount)
            if pad > 0 { try zeros.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0 ..< pad])) } }
        }
    }

    /// Zero bytes needed after `count` bytes to reach a multiple of the alignment.
    private func padding(_ count: Int) -> Int { (alignment - count % alignment) % alignment }
}
