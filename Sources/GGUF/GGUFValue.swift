#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TensorIO

/// The 13 GGUF metadata value types, by their id in the file.
public enum GGUFValueType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The type's name as the GGUF specification and gguf-py spell it ("UINT32", "STRING", ...).
    public var name: String {
        switch self {
        case .uint8: "UINT8"; case .int8: "INT8"; case .uint16: "UINT16"; case .int16: "INT16"
        case .uint32: "UINT32"; case .int32: "INT32"; case .float32: "FLOAT32"; case .bool: "BOOL"
        case .string: "STRING"; case .array: "ARRAY"; case .uint64: "UINT64"; case .int64: "INT64"
        case .float64: "FLOAT64"
        }
    }

    public var description: String { name }

    /// Bytes per value for fixed-size types; nil for strings and arrays.
    public var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        case .string, .array: nil
        }
    }
}

/// A GGUF string value: raw bytes, normally UTF-8.
///
/// GGUF does not guarantee that string values are valid UTF-8 (some vocabularies hold raw byte
/// tokens), so the bytes are kept exactly as stored and a writer reproduces them unchanged.
/// `string` decodes them, replacing ill-formed sequences with U+FFFD.
public struct GGUFString: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The stored bytes.
    public var bytes: [UInt8]

    /// The UTF-8 bytes of `string`.
    public init(_ string: String) { bytes = Array(string.utf8) }
    /// Arbitrary bytes (not necessarily UTF-8).
    public init(bytes: [UInt8]) { self.bytes = bytes }
    public init(stringLiteral value: String) { self.init(value) }

    /// The bytes decoded as UTF-8, ill-formed sequences replaced by U+FFFD.
    public var string: String { String(decoding: bytes, as: UTF8.self) }
    /// Whether the bytes are well-formed UTF-8.
    public var isValidUTF8: Bool { String(validating: bytes, as: UTF8.self) != nil }
    public var description: String { string }
}

/// A metadata value of one of the 13 GGUF types.
///
/// Equality is bitwise for floating-point values (NaN equals an identical NaN, 0.0 differs from
/// -0.0), so that equal values serialize to equal bytes.
public enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(GGUFString), array(GGUFArray)
    case uint64(UInt64), int64(Int64), float64(Double)

    /// The value's type.
    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8; case .int8: .int8; case .uint16: .uint16; case .int16: .int16
        case .uint32: .uint32; case .int32: .int32; case .float32: .float32; case .bool: .bool
        case .string: .string; case .array: .array; case .uint64: .uint64; case .int64: .int64
        case .float64: .float64
        }
    }

    /// Any integer value that fits in an `Int`; nil for other types or values out of range.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): Int(v); case .int8(let v): Int(v); case .uint16(let v): Int(v)
        case .int16(let v): Int(v); case .uint32(let v): Int(v); case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v); case .int64(let v): Int(exactly: v)
        default: nil
        }
    }

    /// A FLOAT32 or FLOAT64 value, widened exactly to `Double`.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: nil
        }
    }

    /// A BOOL value.
    public var boolValue: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    /// A STRING value decoded as UTF-8 (ill-formed sequences replaced by U+FFFD).
    public var stringValue: String? {
        if case .string(let v) = self { return v.string }
        return nil
    }

    /// An ARRAY value.
    public var arrayValue: GGUFArray? {
        if case .array(let v) = self { return v }
        return nil
    }

    public var description: String {
        switch self {
        case .uint8(let v): "\(v)"; case .int8(let v): "\(v)"; case .uint16(let v): "\(v)"
        case .int16(let v): "\(v)"; case .uint32(let v): "\(v)"; case .int32(let v): "\(v)"
        case .float32(let v): "\(v)"; case .bool(let v): "\(v)"; case .uint64(let v): "\(v)"
        case .int64(let v): "\(v)"; case .float64(let v): "\(v)"
        case .string(let v): "\"\(v.string)\""
        case .array(let v): "[\(v.elementType) × \(v.count)]"
        }
    }

    public static func == (a: GGUFValue, b: GGUFValue) -> Bool {
        switch (a, b) {
        case (.uint8(let x), .uint8(let y)): x == y
        case (.int8(let x), .int8(let y)): x == y
        case (.uint16(let x), .uint16(let y)): x == y
        case (.int16(let x), .int16(let y)): x == y
        case (.uint32(let x), .uint32(let y)): x == y
        case (.int32(let x), .int32(let y)): x == y
        case (.float32(let x), .float32(let y)): x.bitPattern == y.bitPattern
        case (.bool(let x), .bool(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.uint64(let x), .uint64(let y)): x == y
        case (.int64(let x), .int64(let y)): x == y
        case (.float64(let x), .float64(let y)): x.bitPattern == y.bitPattern
        default: false
        }
    }
}

/// A Swift type that is a GGUF fixed-size value type: the integer types, `Float`, `Double`, `Bool`.
public protocol GGUFScalar: Sendable {
    /// The GGUF type of this Swift type.
    static var ggufValueType: GGUFValueType { get }
    /// Loads a value stored little-endian at `offset` of `raw` (unaligned). Implementation detail.
    static func _ggufLoad(from raw: UnsafeRawBufferPointer, at offset: Int) -> Self
    /// Appends the value's little-endian bytes. Implementation detail.
    func _ggufAppend(to bytes: inout [UInt8])
    /// The value wrapped in `GGUFValue`.
    var ggufValue: GGUFValue { get }
}

extension GGUFScalar where Self: FixedWidthInteger {
    @inlinable public static func _ggufLoad(from raw: UnsafeRawBufferPointer, at offset: Int) -> Self {
        Self(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Self.self))
    }
    @inlinable public func _ggufAppend(to bytes: inout [UInt8]) {
        withUnsafeBytes(of: littleEndian) { bytes.append(contentsOf: $0) }
    }
}

extension UInt8: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .uint8 }
    public var ggufValue: GGUFValue { .uint8(self) }
}
extension Int8: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .int8 }
    public var ggufValue: GGUFValue { .int8(self) }
}
extension UInt16: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .uint16 }
    public var ggufValue: GGUFValue { .uint16(self) }
}
extension Int16: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .int16 }
    public var ggufValue: GGUFValue { .int16(self) }
}
extension UInt32: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .uint32 }
    public var ggufValue: GGUFValue { .uint32(self) }
}
extension Int32: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .int32 }
    public var ggufValue: GGUFValue { .int32(self) }
}
extension UInt64: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .uint64 }
    public var ggufValue: GGUFValue { .uint64(self) }
}
extension Int64: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .int64 }
    public var ggufValue: GGUFValue { .int64(self) }
}
extension Float: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .float32 }
    public var ggufValue: GGUFValue { .float32(self) }
    @inlinable public static func _ggufLoad(from raw: UnsafeRawBufferPointer, at offset: Int) -> Float {
        Float(bitPattern: UInt32._ggufLoad(from: raw, at: offset))
    }
    @inlinable public func _ggufAppend(to bytes: inout [UInt8]) { bitPattern._ggufAppend(to: &bytes) }
}
extension Double: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .float64 }
    public var ggufValue: GGUFValue { .float64(self) }
    @inlinable public static func _ggufLoad(from raw: UnsafeRawBufferPointer, at offset: Int) -> Double {
        Double(bitPattern: UInt64._ggufLoad(from: raw, at: offset))
    }
    @inlinable public func _ggufAppend(to bytes: inout [UInt8]) { bitPattern._ggufAppend(to: &bytes) }
}
extension Bool: GGUFScalar {
    public static var ggufValueType: GGUFValueType { .bool }
    public var ggufValue: GGUFValue { .bool(self) }
    /// Readers validate that stored booleans are 0 or 1 before this is called.
    @inlinable public static func _ggufLoad(from raw: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        raw[offset] != 0
    }
    @inlinable public func _ggufAppend(to bytes: inout [UInt8]) { bytes.append(self ? 1 : 0) }
}

/// Immutable bytes with a stable address: either a read-only file mapping (kept alive here) or
/// an allocation owned and freed by this object.
final class ByteStorage: @unchecked Sendable {
    // @unchecked: `bytes` never changes after init and nothing writes through it.
    let bytes: UnsafeRawBufferPointer
    private let mapping: MappedFile?

    init(mapping: MappedFile) {
        self.mapping = mapping
        bytes = mapping.bytes
    }

    init<C: Collection<UInt8>>(copying source: C) {
        mapping = nil
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(source.count, 1), alignment: 64)
        buffer.copyBytes(from: source)
        bytes = UnsafeRawBufferPointer(start: buffer.baseAddress, count: source.count)
    }

    deinit {
        if mapping == nil, let base = bytes.baseAddress { UnsafeMutableRawPointer(mutating: base).deallocate() }
    }
}

/// A GGUF array: an element type, a count and the elements, decoded lazily on access.
///
/// Arrays read from a file are zero-copy views of its mapping (they keep the mapping alive);
/// a string array holds only a table of offsets, and each `String` is decoded when asked for.
/// Arrays of arrays do not exist (GGUF readers refuse them).
public struct GGUFArray: Sendable, Equatable, RandomAccessCollection {
    /// The type of every element (never `.array`).
    public let elementType: GGUFValueType
    /// The number of elements.
    public let count: Int
    let storage: ByteStorage
    /// The serialized elements (as stored after the array's type and count) within `storage`.
    let payload: Range<Int>
    /// String arrays only: `count + 1` offsets, relative to `payload.lowerBound`, of each element's
    /// length prefix; the last one is the end of the payload. Empty for other arrays.
    let starts: [Int]

    init(elementType: GGUFValueType, count: Int, storage: ByteStorage, payload: Range<Int>, starts: [Int]) {
        self.elementType = elementType
        self.count = count
        self.storage = storage
        self.payload = payload
        self.starts = starts
    }

    /// An array of fixed-size values.
    public init<T: GGUFScalar>(_ values: [T]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * (T.ggufValueType.fixedSize ?? 1))
        for value in values { value._ggufAppend(to: &bytes) }
        self.init(elementType: T.ggufValueType, count: values.count,
                  storage: ByteStorage(copying: bytes), payload: 0 ..< bytes.count, starts: [])
    }

    /// An array of strings (stored as their UTF-8 bytes).
    public init(strings: [String]) {
        self.init(strings: strings.map { GGUFString($0) })
    }

    /// An array of strings given as raw bytes.
    public init(strings: [GGUFString]) {
        var bytes: [UInt8] = []
        var starts: [Int] = []
        starts.reserveCapacity(strings.count + 1)
        for string in strings {
            starts.append(bytes.count)
            UInt64(string.bytes.count)._ggufAppend(to: &bytes)
            bytes.append(contentsOf: string.bytes)
        }
        starts.append(bytes.count)
        self.init(elementType: .string, count: strings.count,
                  storage: ByteStorage(copying: bytes), payload: 0 ..< bytes.count, starts: starts)
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    /// The serialized elements, as a view.
    var payloadBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage.bytes[payload]) }

    /// The element at `position`, decoded.
    public subscript(position: Int) -> GGUFValue {
        precondition(position >= 0 && position < count, "GGUFArray index out of range")
        let raw = payloadBytes
        switch elementType {
        case .uint8: return .uint8(._ggufLoad(from: raw, at: position))
        case .int8: return .int8(._ggufLoad(from: raw, at: position))
        case .uint16: return .uint16(._ggufLoad(from: raw, at: position * 2))
        case .int16: return .int16(._ggufLoad(from: raw, at: position * 2))
        case .uint32: return .uint32(._ggufLoad(from: raw, at: position * 4))
        case .int32: return .int32(._ggufLoad(from: raw, at: position * 4))
        case .float32: return .float32(._ggufLoad(from: raw, at: position * 4))
        case .bool: return .bool(._ggufLoad(from: raw, at: position))
        case .uint64: return .uint64(._ggufLoad(from: raw, at: position * 8))
        case .int64: return .int64(._ggufLoad(from: raw, at: position * 8))
        case .float64: return .float64(._ggufLoad(from: raw, at: position * 8))
        case .string: return .string(GGUFString(bytes: Array(stringView(position))))
        case .array: preconditionFailure("GGUF arrays never hold arrays")
        }
    }

    /// The bytes of string element `position`, as a view into the storage.
    private func stringView(_ position: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: payloadBytes[(starts[position] + 8) ..< starts[position + 1]])
    }

    /// String element `position` decoded as UTF-8 (ill-formed sequences replaced by U+FFFD).
    /// - Precondition: `elementType == .string` and `position` is in range.
    public func string(at position: Int) -> String {
        precondition(elementType == .string, "not a string array")
        precondition(position >= 0 && position < count, "GGUFArray index out of range")
        return String(decoding: stringView(position), as: UTF8.self)
    }

    /// The raw bytes of string element `position`.
    /// - Precondition: `elementType == .string` and `position` is in range.
    public func stringBytes(at position: Int) -> [UInt8] {
        precondition(elementType == .string, "not a string array")
        precondition(position >= 0 && position < count, "GGUFArray index out of range")
        return Array(stringView(position))
    }

    /// Every element decoded as a `String`, or nil when this is not a string array.
    public func strings() -> [String]? {
        guard elementType == .string else { return nil }
        return (0 ..< count).map { String(decoding: stringView($0), as: UTF8.self) }
    }

    /// Every element as `T`, or nil when `T` is not this array's element type.
    public func values<T: GGUFScalar>(as _: T.Type = T.self) -> [T]? {
        guard T.ggufValueType == elementType, let size = elementType.fixedSize else { return nil }
        let raw = payloadBytes
        return (0 ..< count).map { T._ggufLoad(from: raw, at: $0 * size) }
    }

    /// Calls `body` with the serialized elements exactly as stored in GGUF, without copying:
    /// for fixed-size types the packed little-endian values, for strings each element's 8-byte
    /// length followed by its bytes. The view is valid only inside `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(payloadBytes) }
    }

    public static func == (a: GGUFArray, b: GGUFArray) -> Bool {
        guard a.elementType == b.elementType, a.count == b.count, a.payload.count == b.payload.count else {
            return false
        }
        let x = a.payloadBytes, y = b.payloadBytes
        if x.isEmpty { return true }
        return withExtendedLifetime((a.storage, b.storage)) { memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
    }
}

/// One metadata entry: a key and its value, in file order.
public struct GGUFMetadataEntry: Sendable, Equatable {
    /// The key, e.g. `general.architecture`.
    public var key: String
    /// The value.
    public var value: GGUFValue

    /// An entry.
    public init(key: String, value: GGUFValue) {
        self.key = key
        self.value = value
    }
}
