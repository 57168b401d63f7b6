import TensorIO

/// The element types we accept, named as in safetensors headers. All are little-endian.
///
/// Other names the format knows (`F8_E8M0`, `F8_E4M3FNUZ`, `F8_E5M2FNUZ`, `F6_E2M3`, `F6_E3M2`, `F4`,
/// `C64`, ...) are refused by name with `SafetensorsError.Kind.unsupportedDType`.
public enum SafetensorsDType: String, Sendable, CaseIterable, Hashable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case u16 = "U16"
    case i16 = "I16"
    case f16 = "F16"
    case bf16 = "BF16"
    case u32 = "U32"
    case i32 = "I32"
    case f32 = "F32"
    case u64 = "U64"
    case i64 = "I64"
    case f64 = "F64"
    /// OCP FP8 E4M3 ("FN": no infinities, 0x7F/0xFF are NaN, max 448).
    case f8E4M3 = "F8_E4M3"
    /// OCP FP8 E5M2 (IEEE-like: infinities and NaNs).
    case f8E5M2 = "F8_E5M2"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8E4M3, .f8E5M2: 1
        case .u16, .i16, .f16, .bf16: 2
        case .u32, .i32, .f32: 4
        case .u64, .i64, .f64: 8
        }
    }

    /// Whether `floats(for:)` can convert tensors of this type.
    public var isFloatingPoint: Bool {
        switch self {
        case .f16, .bf16, .f32, .f64, .f8E4M3, .f8E5M2: true
        default: false
        }
    }

    /// The names we accept, for error messages.
    static let supportedNames = allCases.map(\.rawValue).joined(separator: ", ")

    /// Rank in the reference implementation's dtype order (increasing alignment). The writer lays
    /// tensors out by decreasing rank, then by name, as the reference writer does.
    var layoutRank: Int {
        switch self {
        case .bool: 0
        case .u8: 1
        case .i8: 2
        case .f8E5M2: 3
        case .f8E4M3: 4
        case .i16: 5
        case .u16: 6
        case .f16: 7
        case .bf16: 8
        case .i32: 9
        case .u32: 10
        case .f32: 11
        case .f64: 12
        case .i64: 13
        case .u64: 14
        }
    }
}

/// Decoding of the two OCP 8-bit float formats (OCP 8-bit Floating Point Specification, v1.0).
public enum Float8 {
    /// The value of an E4M3 ("FN") byte: bias 7, subnormals, no infinities; `0x7F`/`0xFF` are NaN.
    @inlinable public static func e4m3ToFloat(_ bits: UInt8) -> Float { e4m3Table[Int(bits)] }

    /// The value of an E5M2 byte: bias 15, subnormals, infinities and NaNs as in IEEE 754.
    @inlinable public static func e5m2ToFloat(_ bits: UInt8) -> Float { e5m2Table[Int(bits)] }

    /// All 256 E4M3 values, indexed by bit pattern.
    public static let e4m3Table: [Float] = (0 ... 255).map { decodeE4M3(UInt8($0)) }
    /// All 256 E5M2 values, indexed by bit pattern.
    public static let e5m2Table: [Float] = (0 ... 255).map { decodeE5M2(UInt8($0)) }

    static func decodeE4M3(_ bits: UInt8) -> Float {
        let sign: FloatingPointSign = bits & 0x80 != 0 ? .minus : .plus
        let exponent = Int((bits >> 3) & 0x0F)
        let mantissa = Float(bits & 0x07)
        if exponent == 0x0F && bits & 0x07 == 0x07 { return .nan }
        if exponent == 0 { return Float(sign: sign, exponent: -9, significand: mantissa) }  // m/8 · 2^-6
        return Float(sign: sign, exponent: exponent - 7, significand: 1 + mantissa / 8)
    }

    static func decodeE5M2(_ bits: UInt8) -> Float {
        let sign: FloatingPointSign = bits & 0x80 != 0 ? .minus : .plus
        let exponent = Int((bits >> 2) & 0x1F)
        let mantissa = Float(bits & 0x03)
        if exponent == 0x1F { return bits & 0x03 == 0 ? (sign == .minus ? -.infinity : .infinity) : .nan }
        if exponent == 0 { return Float(sign: sign, exponent: -16, significand: mantissa) }  // m/4 · 2^-14
        return Float(sign: sign, exponent: exponent - 15, significand: 1 + mantissa / 4)
    }
}
