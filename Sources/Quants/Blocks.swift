// ggml block layouts, field for field.
//
// These structs document the on-disk layout of each block type (ggml's `ggml-common.h`) and let a
// caller load a whole block with `UnsafeRawPointer.loadUnaligned(fromByteOffset:as:)`. The
// dequantization and quantization kernels do not materialize them: they read each field by its byte
// offset from the raw buffer. Tests pin every struct's size and field offsets to ggml's.
//
// Conventions: a `ggml_half` field is stored as its IEEE binary16 bits (`UInt16`, little-endian on
// disk; the structs assume a little-endian host, as ggml does); C arrays are homogeneous tuples
// (`BlockField`), which Swift lays out contiguously without padding. QK_K, the super-block size of
// the K-quants and IQ4_XS, is 256.

/// A ggml block layout: one block of `type` holds `type.blockSize` elements in
/// `MemoryLayout<Self>.size == type.typeSize` bytes.
public protocol GGMLBlock: BitwiseCopyable, Sendable {
    /// The ggml type whose block this is.
    static var type: GGMLType { get }
}

/// Fixed-size C arrays as Swift tuples, used for the array fields of the block structs.
public enum BlockField {
    /// 4 × `UInt8`, laid out contiguously like a C array `uint8_t[4]`.
    public typealias U8x4 = (
        UInt8, UInt8, UInt8, UInt8
    )
    /// 12 × `UInt8`, laid out contiguously like a C array `uint8_t[12]`.
    public typealias U8x12 = (
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
    )
    /// 16 × `UInt8`, laid out contiguously like a C array `uint8_t[16]`.
    public typealias U8x16 = (
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
    )
    /// 32 × `UInt8`, laid out contiguously like a C array `uint8_t[32]`.
    public typealias U8x32 = (
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
    )
    /// 64 × `UInt8`, laid out contiguously like a C array `uint8_t[64]`.
    public typealias U8x64 = (
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
    )
    /// 128 × `UInt8`, laid out contiguously like a C array `uint8_t[128]`.
    public typealias U8x128 = (
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
    )
    /// 16 × `Int8`, laid out contiguously like a C array `int8_t[16]`.
    public typealias I8x16 = (
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8
    )
    /// 32 × `Int8`, laid out contiguously like a C array `int8_t[32]`.
    public typealias I8x32 = (
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8
    )
    /// 256 × `Int8`, laid out contiguously like a C array `int8_t[256]`.
    public typealias I8x256 = (
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8,
        Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8, Int8
    )
    /// 16 × `Int16`, laid out contiguously like a C array `int16_t[16]`.
    public typealias I16x16 = (
        Int16, Int16, Int16, Int16, Int16, Int16, Int16, Int16, Int16, Int16, Int16, Int16, Int16, Int16, Int16, Int16
    )
}

// MARK: - 32-element blocks

/// `block_q4_0` (18 bytes, 32 elements): symmetric 4-bit.
///
/// Element `j < 16` is the low nibble of `qs[j]`, element `j + 16` its high nibble; the value is
/// `(nibble - 8) * d`.
public struct BlockQ4_0: GGMLBlock {
    public static var type: GGMLType { .q4_0 }
    /// Scale (`ggml_half` bits).
    public var d: UInt16
    /// 32 packed 4-bit quants.
    public var qs: BlockField.U8x16
}

/// `block_q4_1` (20 bytes, 32 elements): 4-bit with a minimum; value `nibble * d + m`.
public struct BlockQ4_1: GGMLBlock {
    public static var type: GGMLType { .q4_1 }
    /// Scale (`ggml_half` bits).
    public var d: UInt16
    /// Minimum, added after scaling (`ggml_half` bits).
    public var m: UInt16
    /// 32 packed 4-bit quants (low nibbles: elements 0–15, high nibbles: 16–31).
    public var qs: BlockField.U8x16
}

/// `block_q5_0` (22 bytes, 32 elements): symmetric 5-bit; value `(q - 16) * d`.
public struct BlockQ5_0: GGMLBlock {
    public static var type: GGMLType { .q5_0 }
    /// Scale (`ggml_half` bits).
    public var d: UInt16
    /// The fifth bit of each quant: bit `j` of this little-endian `uint32` belongs to element `j`.
    public var qh: BlockField.U8x4
    /// Low four bits of the quants, packed like `BlockQ4_0.qs`.
    public var qs: BlockField.U8x16
}

/// `block_q5_1` (24 bytes, 32 elements): 5-bit with a minimum; value `q * d + m`.
public struct BlockQ5_1: GGMLBlock {
    public static var type: GGMLType { .q5_1 }
    /// Scale (`ggml_half` bits).
    public var d: UInt16
    /// Minimum (`ggml_half` bits).
    public var m: UInt16
    /// The fifth bit of each quant (bit `j` of the little-endian `uint32` is element `j`'s).
    public var qh: BlockField.U8x4
    /// Low four bits of the quants, packed like `BlockQ4_0.qs`.
    public var qs: BlockField.U8x16
}

/// `block_q8_0` (34 bytes, 32 elements): 8-bit; value `qs[j] * d`.
public struct BlockQ8_0: GGMLBlock {
    public static var type: GGMLType { .q8_0 }
    /// Scale (`ggml_half` bits).
    public var d: UInt16
    /// Signed quants.
    public var qs: BlockField.I8x32
}

/// `block_q8_1` (36 bytes, 32 elements): ggml's intermediate format for dot products against
/// Q4_1/Q5_1 rows; never stored in model files.
///
/// ggml stores `d` and `s` as two halves (2 + 2 + 32 = 36 bytes). gguf-py's `GGML_QUANT_SIZES`
/// says 40 (it counts two floats); ggml's struct is authoritative, so `GGMLType.q8_1.typeSize`
/// is 36.
public struct BlockQ8_1: GGMLBlock {
    public static var type: GGMLType { .q8_1 }
    /// Scale (`ggml_half` bits).
    public var d: UInt16
    /// `d * sum(qs)` (`ggml_half` bits).
    public var s: UInt16
    /// Signed quants.
    public var qs: BlockField.I8x32
}

/// `block_iq4_nl` (18 bytes, 32 elements): 4-bit indices into the non-linear table
/// `kvalues_iq4nl`; value `d * kvalues_iq4nl[nibble]`, nibbles packed like `BlockQ4_0.qs`.
public struct BlockIQ4_NL: GGMLBlock {
    public static var type: GGMLType { .iq4_NL }
    /// Scale (`ggml_half` bits).
    public var d: UInt16
    /// 32 packed 4-bit table indices.
    public var qs: BlockField.U8x16
}

// MARK: - 256-element super-blocks (QK_K)

/// `block_q2_K` (84 bytes, 256 elements): 16 sub-blocks of 16 with 4-bit scales and mins.
///
/// Sub-block `i` uses `dl = d * (scales[i] & 0xF)` and `ml = dmin * (scales[i] >> 4)`;
/// value `dl * q - ml`, `q` a 2-bit quant. `qs` holds two 128-element halves of 32 bytes each;
/// within a half, element `32 * s + l` is bits `2s...2s+1` of byte `l`.
public struct BlockQ2_K: GGMLBlock {
    public static var type: GGMLType { .q2_K }
    /// Per-sub-block scale (low nibble) and min (high nibble).
    public var scales: BlockField.U8x16
    /// 2-bit quants.
    public var qs: BlockField.U8x64
    /// Super-block scale of the scales (`ggml_half` bits).
    public var d: UInt16
    /// Super-block scale of the mins (`ggml_half` bits).
    public var dmin: UInt16
}

/// `block_q3_K` (110 bytes, 256 elements): 16 sub-blocks of 16 with 6-bit signed scales.
///
/// A quant is 2 low bits from `qs` (packed like `BlockQ2_K.qs`) minus 4 when its bit in `hmask`
/// is clear: element `n` of the block has its high bit at `hmask[n % 32]`, bit `n / 32`. Value
/// `d * (scale - 32) * q`. Scale `i` (6 bits): low 4 bits from nibble `i / 8` of `scales[i % 8]`,
/// high 2 bits from bits `2 * (i / 4)` of `scales[8 + i % 4]`.
public struct BlockQ3_K: GGMLBlock {
    public static var type: GGMLType { .q3_K }
    /// High bit of each quant (set: quant is 0...3; clear: quant is -4...-1).
    public var hmask: BlockField.U8x32
    /// Low two bits of each quant.
    public var qs: BlockField.U8x64
    /// Sixteen 6-bit scales, biased by 32.
    public var scales: BlockField.U8x12
    /// Super-block scale (`ggml_half` bits).
    public var d: UInt16
}

/// `block_q4_K` (144 bytes, 256 elements): 8 sub-blocks of 32 with 6-bit scales and mins.
///
/// Sub-block `j` has scale `sc` and min `m` from `scales` (ggml's `get_scale_min_k4`: for `j < 4`,
/// `sc = scales[j] & 63`, `m = scales[j + 4] & 63`; otherwise the low four bits come from
/// `scales[j + 4]` (low nibble for sc, high nibble for m) and the top two from bits 6–7 of
/// `scales[j - 4]` (sc) and `scales[j]` (m)). Value `d * sc * q - dmin * m`. `qs` holds four
/// 32-byte groups; group `g`'s low nibbles are sub-block `2g`, its high nibbles sub-block `2g + 1`.
public struct BlockQ4_K: GGMLBlock {
    public static var type: GGMLType { .q4_K }
    /// Super-block scale of the scales (`ggml_half` bits).
    public var d: UInt16
    /// Super-block scale of the mins (`ggml_half` bits).
    public var dmin: UInt16
    /// Eight 6-bit scales and eight 6-bit mins (`K_SCALE_SIZE` = 12 bytes).
    public var scales: BlockField.U8x12
    /// 4-bit quants.
    public var qs: BlockField.U8x128
}

/// `block_q5_K` (176 bytes, 256 elements): like `BlockQ4_K` plus a fifth bit per quant.
///
/// The fifth bit of element `32 * s + l` (sub-block `s`) is bit `s` of `qh[l]`.
public struct BlockQ5_K: GGMLBlock {
    public static var type: GGMLType { .q5_K }
    /// Super-block scale of the scales (`ggml_half` bits).
    public var d: UInt16
    /// Super-block scale of the mins (`ggml_half` bits).
    public var dmin: UInt16
    /// Eight 6-bit scales and mins, packed as in `BlockQ4_K`.
    public var scales: BlockField.U8x12
    /// High (fifth) bit of each quant.
    public var qh: BlockField.U8x32
    /// Low four bits of each quant, packed as `BlockQ4_K.qs`.
    public var qs: BlockField.U8x128
}

/// `block_q6_K` (210 bytes, 256 elements): 16 sub-blocks of 16 with 8-bit signed scales.
///
/// The block is two 128-element halves; in half `h`, for `l` in 0..<32, elements `l`, `l + 32`,
/// `l + 64`, `l + 96` take their low nibbles from `ql[64h + l]` (low), `ql[64h + l + 32]` (low),
/// `ql[64h + l]` (high), `ql[64h + l + 32]` (high), and their top two bits from bits 0–1, 2–3,
/// 4–5, 6–7 of `qh[32h + l]`. Value `d * scales[e / 16] * (q - 32)`.
public struct BlockQ6_K: GGMLBlock {
    public static var type: GGMLType { .q6_K }
    /// Low four bits of each quant.
    public var ql: BlockField.U8x128
    /// High two bits of each quant.
    public var qh: BlockField.U8x64
    /// Signed 8-bit sub-block scales.
    public var scales: BlockField.I8x16
    /// Super-block scale (`ggml_half` bits).
    public var d: UInt16
}

/// `block_q8_K` (292 bytes, 256 elements): ggml's intermediate format for K-quant dot products;
/// value `d * qs[j]`.
public struct BlockQ8_K: GGMLBlock {
    public static var type: GGMLType { .q8_K }
    /// Scale, a full `float` (not a half).
    public var d: Float
    /// Signed quants.
    public var qs: BlockField.I8x256
    /// Sum of each group of 16 quants.
    public var bsums: BlockField.I16x16
}

/// `block_iq4_xs` (136 bytes, 256 elements): 8 sub-blocks of 32 with 6-bit scales and
/// `kvalues_iq4nl` indices.
///
/// Scale of sub-block `ib`: low four bits are nibble `ib % 2` of `scales_l[ib / 2]`, high two bits
/// are bits `2 * ib` of `scales_h`; value `d * (scale - 32) * kvalues_iq4nl[nibble]`. `qs` holds
/// 16 bytes per sub-block, packed like `BlockQ4_0.qs`.
public struct BlockIQ4_XS: GGMLBlock {
    public static var type: GGMLType { .iq4_XS }
    /// Super-block scale (`ggml_half` bits).
    public var d: UInt16
    /// High two bits of the eight sub-block scales.
    public var scales_h: UInt16
    /// Low four bits of the eight sub-block scales.
    public var scales_l: BlockField.U8x4
    /// 4-bit table indices.
    public var qs: BlockField.U8x128
}

extension GGMLType {
    /// The block layout struct of this type, for the types that have one here.
    public var blockLayout: (any GGMLBlock.Type)? {
        switch self {
        case .q4_0: BlockQ4_0.self
        case .q4_1: BlockQ4_1.self
        case .q5_0: BlockQ5_0.self
        case .q5_1: BlockQ5_1.self
        case .q8_0: BlockQ8_0.self
        case .q8_1: BlockQ8_1.self
        case .q2_K: BlockQ2_K.self
        case .q3_K: BlockQ3_K.self
        case .q4_K: BlockQ4_K.self
        case .q5_K: BlockQ5_K.self
        case .q6_K: BlockQ6_K.self
        case .q8_K: BlockQ8_K.self
        case .iq4_NL: BlockIQ4_NL.self
        case .iq4_XS: BlockIQ4_XS.self
        default: nil
        }
    }
}
