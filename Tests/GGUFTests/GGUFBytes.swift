/// A byte-level GGUF builder for tests: writes fields exactly as the specification lays them out,
/// with no validation, so that any corruption can be expressed. `mark(_:)` records the offset of
/// the next field so tests can assert the offset an error reports.
struct GGUFBytes {
    var bytes: [UInt8] = []
    var marks: [String: Int] = [:]

    /// The offset of the next byte written.
    var offset: Int { bytes.count }

    /// Records the offset of the next field under `name`.
    mutating func mark(_ name: String) { marks[name] = bytes.count }

    /// The offset recorded under `name`.
    subscript(mark name: String) -> Int {
        guard let offset = marks[name] else { fatalError("no mark \(name)") }
        return offset
    }

    mutating func raw(_ values: [UInt8]) { bytes += values }
    mutating func raw(_ text: String) { bytes += Array(text.utf8) }
    mutating func zeros(_ count: Int) { bytes += [UInt8](repeating: 0, count: count) }

    mutating func int<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
    mutating func u8(_ v: UInt8) { int(v) }
    mutating func u32(_ v: UInt32) { int(v) }
    mutating func i32(_ v: Int32) { int(v) }
    mutating func u64(_ v: UInt64) { int(v) }
    mutating func i64(_ v: Int64) { int(v) }
    mutating func f32(_ v: Float) { int(v.bitPattern) }
    mutating func f64(_ v: Double) { int(v.bitPattern) }

    /// A GGUF string: 8-byte length, then the bytes.
    mutating func string(_ value: [UInt8]) {
        u64(UInt64(value.count))
        raw(value)
    }
    mutating func string(_ value: String) { string(Array(value.utf8)) }

    /// Magic, version, tensor count, key count.
    mutating func header(version: UInt32 = 3, tensors: UInt64, keys: UInt64) {
        raw("GGUF")
        u32(version)
        u64(tensors)
        u64(keys)
    }

    /// A key and a value type id; the caller writes the value.
    mutating func key(_ key: String, type: UInt32) {
        string(key)
        u32(type)
    }

    /// A complete tensor info.
    mutating func tensorInfo(_ name: String, dims: [Int64], type: UInt32, offset: UInt64) {
        string(name)
        u32(UInt32(dims.count))
        for dim in dims { i64(dim) }
        u32(type)
        u64(offset)
    }

    /// Zero bytes up to the next multiple of `alignment`.
    mutating func pad(to alignment: Int) {
        zeros((alignment - bytes.count % alignment) % alignment)
    }
}

/// Value type ids, spelled out so tests do not depend on the code under test.
enum TypeID {
    static let uint8: UInt32 = 0, int8: UInt32 = 1, uint16: UInt32 = 2, int16: UInt32 = 3
    static let uint32: UInt32 = 4, int32: UInt32 = 5, float32: UInt32 = 6, bool: UInt32 = 7
    static let string: UInt32 = 8, array: UInt32 = 9, uint64: UInt32 = 10, int64: UInt32 = 11
    static let float64: UInt32 = 12
}

/// ggml tensor type ids used in tests.
enum GGMLID {
    static let f32: UInt32 = 0, f16: UInt32 = 1, q4_1: UInt32 = 3, q8_0: UInt32 = 8, i8: UInt32 = 24
}
