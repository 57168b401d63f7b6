/// Thrown by `ByteCursor` when a read would run past the end of its buffer.
///
/// Format readers catch it and rethrow their own typed error carrying the same offset.
public struct OutOfBounds: Error, Sendable, Equatable {
    /// Absolute offset of the read that failed.
    public var offset: Int
    /// Bytes the read needed.
    public var needed: Int
    /// Bytes that remained.
    public var remaining: Int

    @inlinable public init(offset: Int, needed: Int, remaining: Int) {
        self.offset = offset
        self.needed = needed
        self.remaining = remaining
    }
}

/// A bounded little-endian reader over raw bytes that never trusts a length.
///
/// Every read checks the bytes remaining first; nothing is allocated on the strength of a count
/// read from the input before that count has been checked against what remains.
public struct ByteCursor {
    /// The bytes being read.
    public let bytes: UnsafeRawBufferPointer
    @usableFromInline var _offset: Int
    /// The absolute offset of the next read.
    @inlinable public var offset: Int { _offset }

    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self._offset = offset
    }

    /// Bytes left after `offset`.
    @inlinable public var remaining: Int { bytes.count - offset }

    /// Throws unless at least `count` bytes remain.
    @inlinable public func require(_ count: Int) throws(OutOfBounds) {
        if count < 0 || count > remaining {
            throw OutOfBounds(offset: offset, needed: count, remaining: remaining)
        }
    }

    @inlinable mutating func load<T: FixedWidthInteger>(_: T.Type) throws(OutOfBounds) -> T {
        try require(MemoryLayout<T>.size)
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        _offset += MemoryLayout<T>.size
        return value
    }

    @inlinable public mutating func u8() throws(OutOfBounds) -> UInt8 { try load(UInt8.self) }
    @inlinable public mutating func i8() throws(OutOfBounds) -> Int8 { try load(Int8.self) }
    @inlinable public mutating func u16() throws(OutOfBounds) -> UInt16 { try load(UInt16.self) }
    @inlinable public mutating func i16() throws(OutOfBounds) -> Int16 { try load(Int16.self) }
    @inlinable public mutating func u32() throws(OutOfBounds) -> UInt32 { try load(UInt32.self) }
    @inlinable public mutating func i32() throws(OutOfBounds) -> Int32 { try load(Int32.self) }
    @inlinable public mutating func u64() throws(OutOfBounds) -> UInt64 { try load(UInt64.self) }
    @inlinable public mutating func i64() throws(OutOfBounds) -> Int64 { try load(Int64.self) }
    @inlinable public mutating func f32() throws(OutOfBounds) -> Float { Float(bitPattern: try u32()) }
    @inlinable public mutating func f64() throws(OutOfBounds) -> Double { Double(bitPattern: try u64()) }

    /// Returns the next `count` bytes as a view (no copy) and advances past them.
    @inlinable public mutating func slice(_ count: Int) throws(OutOfBounds) -> UnsafeRawBufferPointer {
        try require(count)
        let view = UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + count])
        _offset += count
        return view
    }

    /// Advances `count` bytes without reading them.
    @inlinable public mutating func skip(_ count: Int) throws(OutOfBounds) {
        try require(count)
        _offset += count
    }

    /// Moves to an absolute offset within the buffer.
    @inlinable public mutating func seek(to position: Int) throws(OutOfBounds) {
        if position < 0 || position > bytes.count {
            throw OutOfBounds(offset: position, needed: 0, remaining: 0)
        }
        _offset = position
    }
}

/// Overflow-checked arithmetic on counts read from untrusted input: nil means overflow.
public enum Checked {
    @inlinable public static func mul(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }
    @inlinable public static func add(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }
    /// The product of `values`, or nil on overflow or a negative factor.
    @inlinable public static func product<S: Sequence>(_ values: S) -> Int? where S.Element == Int {
        var total = 1
        for v in values {
            guard v >= 0, let next = mul(total, v) else { return nil }
            total = next
        }
        return total
    }
    /// `value` rounded up to a multiple of `alignment` (> 0), or nil on overflow.
    @inlinable public static func alignUp(_ value: Int, _ alignment: Int) -> Int? {
        let r = value % alignment
        return r == 0 ? value : add(value, alignment - r)
    }
    /// `UInt64` to `Int`, or nil when it does not fit.
    @inlinable public static func int(_ value: UInt64) -> Int? {
        value <= UInt64(Int.max) ? Int(value) : nil
    }
}
