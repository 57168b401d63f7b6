/// The NumPy `.npy` format (version 1.0/2.0/3.0 read, 1.0 written), little-endian, C order.
public enum NPY {
    /// Element types we read and write, with their numpy `descr`.
    public enum DType: String, Sendable, CaseIterable {
        case f32 = "<f4", f64 = "<f8", f16 = "<f2"
        case i8 = "|i1", u8 = "|u1", i16 = "<i2", u16 = "<u2", i32 = "<i4", u32 = "<u4"
        case i64 = "<i8", u64 = "<u8", bool = "|b1"

        /// Bytes per element.
        public var size: Int {
            switch self {
            case .i8, .u8, .bool: 1
            case .f16, .i16, .u16: 2
            case .f32, .i32, .u32: 4
            case .f64, .i64, .u64: 8
            }
        }
    }

    /// A decoded array: dtype, shape and the raw little-endian element bytes.
    public struct Array: Sendable {
        public var dtype: DType
        public var shape: [Int]
        public var data: [UInt8]

        public init(dtype: DType, shape: [Int], data: [UInt8]) {
            self.dtype = dtype
            self.shape = shape
            self.data = data
        }

        /// The elements as floats (f32, f16 and f64 arrays).
        public func floats() -> [Float]? {
            let n = shape.reduce(1, *)
            return data.withUnsafeBytes { raw -> [Float]? in
                switch dtype {
                case .f32: return (0 ..< n).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
                case .f64: return (0 ..< n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
                case .f16: return (0 ..< n).map { HalfFloat.f16ToFloat(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
                default: return nil
                }
            }
        }
    }

    /// A malformed `.npy` file.
    public struct FormatError: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var offset: Int
        public var reason: String
        public var description: String { "\(path): invalid .npy at byte \(offset): \(reason)" }
    }

    /// The bytes of a version 1.0 `.npy` file holding `data` (already little-endian element bytes).
    public static func encode(dtype: DType, shape: [Int], data: UnsafeRawBufferPointer) -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ")
        let shapeText = shape.count == 1 ? "(\(dims),)" : "(\(dims))"
        var header = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93] + Swift.Array("NUMPY".utf8) + [1, 0]
        let length = UInt16(header.utf8.count)
        out += [UInt8(length & 0xFF), UInt8(length >> 8)]
        out += header.utf8
        out += data
        return out
    }

    /// Writes `values` as a float32 `.npy` atomically.
    public static func write(path: String, shape: [Int], values: [Float]) throws {
        let bytes = values.withUnsafeBytes { encode(dtype: .f32, shape: shape, data: $0) }
        try AtomicFile.write(to: path, bytes: bytes)
    }

    /// Reads a `.npy` file (little-endian, C order, dtypes of `DType`).
    /// - Throws: `FileError`, or `FormatError` naming the problem.
    public static func read(path: String, limit: Int = 1 << 32) throws -> Array {
        let file = try MappedFile(path: path)
        return try decode(file.bytes, path: path, limit: limit)
    }

    /// Decodes `.npy` bytes.
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String = "<memory>", limit: Int = 1 << 32) throws -> Array {
        func fail(_ offset: Int, _ reason: String) -> FormatError { FormatError(path: path, offset: offset, reason: reason) }
        var cursor = ByteCursor(bytes)
        do {
            let magic = try cursor.slice(6)
            guard Swift.Array(magic) == [0x93] + Swift.Array("NUMPY".utf8) else { throw fail(0, "bad magic (not a .npy file)") }
            let major = try cursor.u8()
            _ = try cursor.u8()
            let headerLength: Int
            switch major {
            case 1: headerLength = Int(try cursor.u16())
            case 2, 3: headerLength = Int(try cursor.u32())
            default: throw fail(6, "unsupported .npy version \(major)")
            }
            guard headerLength <= 1 << 20 else { throw fail(8, "header of \(headerLength) bytes is too large") }
            let headerStart = cursor.offset
            let headerBytes = try cursor.slice(headerLength)
            let header = String(decoding: headerBytes, as: UTF8.self)
            guard let descr = dictValue(header, "descr"), let dtype = DType(rawValue: descr.trimmingQuotes())
                ?? (descr.trimmingQuotes() == "<f4" ? .f32 : nil) else {
                throw fail(headerStart, "unsupported dtype in header \(header)")
            }
            if let fortran = dictValue(header, "fortran_order"), fortran.hasPrefix("True") {
                throw fail(headerStart, "Fortran-order arrays are not supported")
            }
            guard let shapeText = dictValue(header, "shape") else { throw fail(headerStart, "header has no shape") }
            let shape = try parseShape(shapeText).map { $0 }
            guard let shapeValues = shape, let count = Checked.product(shapeValues),
                  let size = Checked.mul(count, dtype.size), size <= limit else {
                throw fail(headerStart, "invalid or oversized shape \(shapeText)")
            }
            guard size == cursor.remaining else {
                throw fail(cursor.offset, "data is \(cursor.remaining) bytes, shape \(shapeValues) of \(dtype.rawValue) needs \(size)")
            }
            return Array(dtype: dtype, shape: shapeValues, data: Swift.Array(try cursor.slice(size)))
        } catch let error as OutOfBounds {
            throw fail(error.offset, "truncated file")
        }
    }

    private static func dictValue(_ header: String, _ key: String) -> String? {
        guard let range = header.range(of: "'\(key)':") else { return nil }
        return String(header[range.upperBound...].drop(while: { $0 == " " }))
    }

    private static func parseShape(_ text: String) throws -> [Int]? {
        guard text.hasPrefix("("), let close = text.firstIndex(of: ")") else { return nil }
        let inner = text[text.index(after: text.startIndex) ..< close]
        var dims: [Int] = []
        for part in inner.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: " ")
            if trimmed.isEmpty { continue }
            guard let value = Int(trimmed), value >= 0 else { return nil }
            dims.append(value)
        }
        return dims
    }
}

extension StringProtocol {
    func trimmingQuotes() -> String {
        var s = Substring(self)
        if let end = s.firstIndex(where: { $0 == "," || $0 == "}" }) { s = s[..<end] }
        return String(s.filter { $0 != "'" && $0 != "\"" && $0 != " " })
    }

    func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}

extension String {
    /// The first range of `needle` in the string (a small Foundation-free search).
    func range(of needle: String) -> Range<String.Index>? {
        guard !needle.isEmpty else { return nil }
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(needle) {
                return index ..< self.index(index, offsetBy: needle.count)
            }
            index = self.index(after: index)
        }
        return nil
    }
}
