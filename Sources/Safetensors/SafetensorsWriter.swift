import TensorIO

/// Builds a safetensors file: add tensors and metadata, then `write(to:)` (atomic) or `serialize()`.
///
/// The output follows what the reference writer produces, byte for byte when the metadata has at
/// most one entry (the reference orders several entries arbitrarily; we sort them by key):
/// - the header is compact JSON: `__metadata__` first (omitted when empty), then the tensors in
///   data order, each as `{"dtype":…,"shape":[…],"data_offsets":[b,e]}`;
/// - the header is padded with spaces so that `8 + N` is a multiple of 8;
/// - tensors are laid out by decreasing element alignment (8-byte types first, then 4, 2, 1;
///   ties in the reference dtype order), then by name (UTF-8 byte order). With the padded header,
///   every tensor then starts at a file offset that is a multiple of its element size.
///
/// Rules are checked as tensors are added (and again on write): unique names, no `__metadata__`
/// or NUL in names, non-negative shapes without overflow, data lengths matching dtype × shape.
public struct SafetensorsWriter {
    /// Receives a tensor's bytes from a producer closure (see `add(_:dtype:shape:producer:)`).
    public struct Sink {
        fileprivate let name: String
        fileprivate let expected: Int
        fileprivate let emit: (UnsafeRawBufferPointer) throws -> Void
        /// Bytes written so far.
        public private(set) var written = 0

        /// Appends bytes of the tensor.
        /// - Throws: `SafetensorsError` `.dataLengthMismatch` when more bytes than the tensor's size
        ///   are written, or the error of the underlying output.
        public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
            guard bytes.count <= expected - written else {
                throw SafetensorsError(.dataLengthMismatch,
                                       "producer of tensor '\(name)' wrote more than its \(expected) bytes", tensor: name)
            }
            try emit(bytes)
            written += bytes.count
        }

        /// Appends bytes of the tensor.
        public mutating func write(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { try write($0) }
        }
    }

    private enum Source {
        case bytes([UInt8])
        case producer((inout Sink) throws -> Void)
    }

    private struct Entry {
        var name: String
        var dtype: SafetensorsDType
        var shape: [Int]
        var byteCount: Int
        var source: Source
    }

    private var entries: [Entry] = []
    private var names: Set<String> = []
    /// The `__metadata__` entries (written sorted by key).
    public var metadata: [String: String]

    /// An empty writer.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// The number of tensors added.
    public var tensorCount: Int { entries.count }

    /// Adds a tensor whose little-endian bytes are in `bytes` (not copied: arrays share storage).
    /// - Throws: `SafetensorsError` for a bad name, shape or length.
    public mutating func add(_ name: String, dtype: SafetensorsDType, shape: [Int], bytes: [UInt8]) throws(SafetensorsError) {
        let size = try checkedSize(name, dtype, shape)
        guard bytes.count == size else {
            throw SafetensorsError(.dataLengthMismatch,
                                   "tensor '\(name)' has \(bytes.count) bytes but \(dtype.rawValue) \(shape) needs \(size)", tensor: name)
        }
        append(Entry(name: name, dtype: dtype, shape: shape, byteCount: size, source: .bytes(bytes)))
    }

    /// Adds a tensor whose bytes a closure writes when the file is written, so large tensors (a
    /// mapped file, a buffer being filled) are not copied into the writer first. The closure must
    /// write exactly the tensor's size in bytes, in order, little-endian.
    /// - Throws: `SafetensorsError` for a bad name or shape.
    public mutating func add(_ name: String, dtype: SafetensorsDType, shape: [Int],
                             producer: @escaping (inout Sink) throws -> Void) throws(SafetensorsError) {
        let size = try checkedSize(name, dtype, shape)
        append(Entry(name: name, dtype: dtype, shape: shape, byteCount: size, source: .producer(producer)))
    }

    /// Adds a float tensor, converting `values` to `dtype` (F32, F16 and BF16 round to nearest
    /// even; F64 is exact).
    /// - Throws: `SafetensorsError` for a bad name, shape or count, or `.notFloatingPoint` for a
    ///   dtype other than F32, F16, BF16, F64.
    public mutating func add(_ name: String, shape: [Int], floats values: [Float], as dtype: SafetensorsDType = .f32) throws(SafetensorsError) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * dtype.byteSize)
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }
        switch dtype {
        case .f32: for v in values { append(v.bitPattern) }
        case .f16: for v in values { append(HalfFloat.floatToF16(v)) }
        case .bf16: for v in values { append(HalfFloat.floatToBF16(v)) }
        case .f64: for v in values { append(Double(v).bitPattern) }
        default:
            throw SafetensorsError(.notFloatingPoint,
                                   "cannot store floats as \(dtype.rawValue) (F32, F16, BF16 and F64 are supported)", tensor: name)
        }
        try add(name, dtype: dtype, shape: shape, bytes: bytes)
    }

    private mutating func append(_ entry: Entry) {
        entries.append(entry)
        names.insert(entry.name)
    }

    private func checkedSize(_ name: String, _ dtype: SafetensorsDType, _ shape: [Int]) throws(SafetensorsError) -> Int {
        if name == "__metadata__" || name.utf8.contains(0) {
            throw SafetensorsError(.invalidTensorName,
                                   "'\(name)' cannot be a tensor name (reserved, or contains U+0000)", tensor: name)
        }
        if names.contains(name) {
            throw SafetensorsError(.duplicateTensorName, "a tensor named '\(name)' was already added", tensor: name)
        }
        if shape.contains(where: { $0 < 0 }) {
            throw SafetensorsError(.invalidShape, "shape \(shape) of tensor '\(name)' has a negative dimension", tensor: name)
        }
        guard let count = Checked.product(shape), let size = Checked.mul(count, dtype.byteSize) else {
            throw SafetensorsError(.sizeOverflow, "shape \(shape) of tensor '\(name)' overflows the byte size", tensor: name)
        }
        return size
    }

    // MARK: Layout

    /// The header bytes (padded JSON, without the 8-byte length) and the tensors in data order.
    public func layout() throws(SafetensorsError) -> (header: [UInt8], tensors: [SafetensorsTensorInfo]) {
        let order = orderedEntries()
        var header: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        if !metadata.isEmpty {
            header += Array("\"__metadata__\":{".utf8)
            for (i, key) in metadata.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if key.utf8.contains(0) {
                    throw SafetensorsError(.invalidMetadata, "metadata key containing U+0000 cannot be written")
                }
                if i > 0 { header.append(UInt8(ascii: ",")) }
                JSON.appendString(key, to: &header)
                header.append(UInt8(ascii: ":"))
                JSON.appendString(metadata[key]!, to: &header)
            }
            header.append(UInt8(ascii: "}"))
            first = false
        }
        var infos: [SafetensorsTensorInfo] = []
        var offset = 0
        for entry in order {
            guard let end = Checked.add(offset, entry.byteCount) else {
                throw SafetensorsError(.sizeOverflow, "total data size overflows", tensor: entry.name)
            }
            if !first { header.append(UInt8(ascii: ",")) }
            first = false
            JSON.appendString(entry.name, to: &header)
            header += Array(":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[".utf8)
            header += Array(entry.shape.map(String.init).joined(separator: ",").utf8)
            header += Array("],\"data_offsets\":[\(offset),\(end)]}".utf8)
            infos.append(SafetensorsTensorInfo(name: entry.name, dtype: entry.dtype, shape: entry.shape, dataOffsets: offset ..< end))
            offset = end
        }
        header.append(UInt8(ascii: "}"))
        header += repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8)
        guard header.count <= SafetensorsFile.maximumHeaderLength else {
            throw SafetensorsError(.headerTooLarge,
                                   "header of \(header.count) bytes exceeds the \(SafetensorsFile.maximumHeaderLength)-byte limit")
        }
        return (header, infos)
    }

    private func orderedEntries() -> [Entry] {
        entries.sorted { a, b in
            if a.dtype.layoutRank != b.dtype.layoutRank { return a.dtype.layoutRank > b.dtype.layoutRank }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
    }

    // MARK: Output

    /// The complete file in memory.
    /// - Throws: `SafetensorsError`, or whatever a producer closure throws.
    public func serialize() throws -> [UInt8] {
        let (header, infos) = try layout()
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + (infos.last?.dataOffsets.upperBound ?? 0))
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out += header
        try emitData { out.append(contentsOf: $0) }
        return out
    }

    /// Writes the file atomically (temporary file, fsync, rename): readers of `path` see the old
    /// file or the complete new one.
    /// - Throws: `SafetensorsError` (`.io` for file-system failures), or whatever a producer throws;
    ///   `path` is left untouched on any error.
    public func write(to path: String) throws {
        let (header, _) = try layout()
        do {
            try AtomicFile.write(to: path) { file in
                try file.writeLE(UInt64(header.count))
                try file.write(header)
                try emitData { try file.write($0) }
            }
        } catch let error as FileError {
            throw SafetensorsError(.io, "cannot write: \(error)", path: path)
        }
    }

    private func emitData(_ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try withoutActuallyEscaping(emit) { emit in
            for entry in orderedEntries() {
                switch entry.source {
                case .bytes(let bytes):
                    try bytes.withUnsafeBytes { try emit($0) }
                case .producer(let produce):
                    var sink = Sink(name: entry.name, expected: entry.byteCount, emit: emit)
                    try produce(&sink)
                    guard sink.written == entry.byteCount else {
                        throw SafetensorsError(.dataLengthMismatch,
                                               "producer of tensor '\(entry.name)' wrote \(sink.written) of its \(entry.byteCount) bytes",
                                               tensor: entry.name)
                    }
                }
            }
        }
    }
}
