/// IEEE half and bfloat16 conversions. `Float16` is the standard library type; bfloat16 is kept as
/// its raw bits (`UInt16`) since Swift has no native type for it.
public enum HalfFloat {
    /// The float value of IEEE binary16 `bits`.
    @inlinable public static func f16ToFloat(_ bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    /// `value` rounded to the nearest IEEE binary16 (ties to even), as bits.
    @inlinable public static func floatToF16(_ value: Float) -> UInt16 {
        Float16(value).bitPattern
    }

    /// The float value of bfloat16 `bits` (exact: bf16 is the top half of a float).
    @inlinable public static func bf16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// `value` rounded to the nearest bfloat16 (ties to even), as bits. NaN stays a quiet NaN.
    @inlinable public static func floatToBF16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        let rounding: UInt32 = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }
}
