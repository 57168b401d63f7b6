// Dequantization kernels, one conformance per block type.
//
// Each kernel decodes one block of `typeSize` bytes at `p` into `blockSize` floats at `out`, called
// for every block by `decodeEachBlock`. The buffers were validated by `withValidatedRow`, so every
// offset below stays within the block being read. The float operations are those of ggml's
// `dequantize_row_*` in the same order (for example Q4_1 is `q * d + m`, Q6_K is
// `(d * scale) * q`), which makes the results bit-identical to gguf-py's numpy implementation.

/// ggml's `kvalues_iq4nl`: the 16 non-linear levels of IQ4_NL and IQ4_XS, as floats (exact).
let kvaluesIQ4NL = SIMD16<Float>(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)

/// Decodes the 32 4-bit levels stored as 16 bytes at `p + offset` through `value`: element `j`
/// from the low nibble of byte `j`, element `j + 16` from its high nibble (Q4_0, Q4_1, IQ4_NL).
@inline(__always)
func decodeNibblePairs(
    _ p: UnsafeRawPointer, at offset: Int, _ out: UnsafeMutablePointer<Float>, _ value: (UInt8) -> Float
) {
    for j in 0 ..< 16 {
        let q = loadU8(p, offset + j)
        out[j] = value(q & 0x0F)
        out[j + 16] = value(q >> 4)
    }
}

/// Decodes the 32 5-bit levels of a Q5_0 or Q5_1 block through `value`: low nibbles paired as in
/// `decodeNibblePairs` at `p + nibblesAt`, bit 4 of level `j` in bit `j` of the `UInt32` at
/// `p + highBitsAt`.
@inline(__always)
func decodeFiveBitLevels(
    _ p: UnsafeRawPointer, highBitsAt: Int, nibblesAt: Int, _ out: UnsafeMutablePointer<Float>,
    _ value: (UInt32) -> Float
) {
    let qh = loadU32(p, highBitsAt)
    for j in 0 ..< 16 {
        let q = UInt32(loadU8(p, nibblesAt + j))
        let h0 = ((qh >> UInt32(j)) << 4) & 0x10
        let h1 = (qh >> UInt32(j + 12)) & 0x10
        out[j] = value((q & 0x0F) | h0)
        out[j + 16] = value((q >> 4) | h1)
    }
}

extension BlockQ4_0: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        try decodeEachBlock(type, src, dst) { p, out in
            let d = loadHalf(p, 0)
            decodeNibblePairs(p, at: 2, out) { q in Float(Int32(q) - 8) * d }
        }
    }
}

extension BlockQ4_1: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        try decodeEachBlock(type, src, dst) { p, out in
            let d = loadHalf(p, 0), m = loadHalf(p, 2)
            decodeNibblePairs(p, at: 4, out) { q in Float(q) * d + m }
        }
    }
}

extension BlockQ5_0: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        try decodeEachBlock(type, src, dst) { p, out in
            let d = loadHalf(p, 0)
            decodeFiveBitLevels(p, highBitsAt: 2, nibblesAt: 6, out) { q in Float(Int32(q) - 16) * d }
        }
    }
}

extension BlockQ5_1: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        try decodeEachBlock(type, src, dst) { p, out in
            let d = loadHalf(p, 0), m = loadHalf(p, 2)
            decodeFiveBitLevels(p, highBitsAt: 4, nibblesAt: 8, out) { q in Float(q) * d + m }
        }
    }
}

extension BlockQ8_0: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        try decodeEachBlock(type, src, dst) { p, out in
            let d = loadHalf(p, 0)
            for j in 0 ..< 32 { out[j] = Float(loadI8(p, 2 + j)) * d }
        }
    }
}

extension BlockIQ4_NL: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        try decodeEachBlock(type, src, dst) { p, out in
            let kv = kvaluesIQ4NL
            let d = loadHalf(p, 0)
            decodeNibblePairs(p, at: 2, out) { q in d * kv[Int(q)] }
        }
    }
}

/// The walk Q2_K and Q3_K share over a 256-element super-block: 16 groups of 16 elements, in
/// output order. Group `i` (elements `16 * i ..< 16 * i + 16`) takes its 2-bit levels as
/// `(byte >> shift) & 3` from the 16 bytes at offset `q`; calls `group(i, q, shift)` for each.
@inline(__always)
func forEachTwoBitGroup(quantsAt: Int, _ group: (_ i: Int, _ q: Int, _ shift: UInt8) -> Void) {
    for half in 0 ..< 2 {
        for shift in stride(from: 0, to: 8, by: 2) {
            for part in 0 ..< 2 {
                group(8 * half + shift + part, quantsAt + 32 * half + 16 * part, UInt8(shift))
            }
        }
    }
}

extension BlockQ2_K: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        // Layout: scales[16] @0, qs[64] @16, d @80, dmin @82.
        try decodeEachBlock(type, src, dst) { p, out in
            let d = loadHalf(p, 80), dmin = loadHalf(p, 82)
            forEachTwoBitGroup(quantsAt: 16) { i, q, shift in
                let sc = loadU8(p, i)
                let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                let o = out + 16 * i
                for l in 0 ..< 16 {
                    o[l] = dl * Float((loadU8(p, q + l) >> shift) & 3) - ml
                }
            }
        }
    }
}

extension BlockQ3_K: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        // Layout: hmask[32] @0, qs[64] @32, scales[12] @96, d @108.
        try decodeEachBlock(type, src, dst) { p, out in
            let dAll = loadHalf(p, 108)
            forEachTwoBitGroup(quantsAt: 32) { i, q, shift in
                let low = (loadU8(p, 96 + i % 8) >> UInt8(4 * (i / 8))) & 0x0F
                let high = (loadU8(p, 104 + i % 4) >> UInt8(2 * (i / 4))) & 0x03
                let dl = dAll * Float(Int32(low | (high << 4)) - 32)
                // hmask[16 * (i % 2) + l], bit i / 2: set means no -4.
                let h = 16 * (i % 2), mask = UInt8(1) << UInt8(i / 2)
                let o = out + 16 * i
                for l in 0 ..< 16 {
                    let low2 = Int32((loadU8(p, q + l) >> shift) & 3)
                    let offset: Int32 = (loadU8(p, h + l) & mask) != 0 ? 0 : 4
                    o[l] = dl * Float(low2 - offset)
                }
            }
        }
    }
}

/// ggml's `get_scale_min_k4`: scale and min of sub-block `j` from the 12 packed bytes at `p`.
@inline(__always)
func scaleMinK4(_ j: Int, _ p: UnsafeRawPointer) -> (scale: UInt8, min: UInt8) {
    if j < 4 {
        return (loadU8(p, j) & 63, loadU8(p, j + 4) & 63)
    }
    let scale = (loadU8(p, j + 4) & 0x0F) | ((loadU8(p, j - 4) >> 6) << 4)
    let min = (loadU8(p, j + 4) >> 4) | ((loadU8(p, j) >> 6) << 4)
    return (scale, min)
}

/// Decodes one Q4_K or Q5_K super-block at `p` (d @0, dmin @2, scales[12] @4) into 256 floats at
/// `out`: group `g` of 64 takes its levels from the 32 bytes at `p + quantsAt + 32 * g` (low
/// nibbles, then high nibbles), plus 16 where Q5_K's bit `2g` (or `2g + 1`) of `qh[l]` at
/// `p + highBitsAt` is set; each value is `d * scale * level - dmin * min` in ggml's order.
@inline(__always)
func decodeScaleMinK(_ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, quantsAt: Int, highBitsAt: Int?) {
    let d = loadHalf(p, 0), dmin = loadHalf(p, 2)
    for g in 0 ..< 4 {
        let (sc1, m1) = scaleMinK4(2 * g, p + 4)
        let (sc2, m2) = scaleMinK4(2 * g + 1, p + 4)
        let d1 = d * Float(sc1), min1 = dmin * Float(m1)
        let d2 = d * Float(sc2), min2 = dmin * Float(m2)
        let u1 = UInt8(1) << UInt8(2 * g), u2 = UInt8(2) << UInt8(2 * g)
        let q = quantsAt + 32 * g, o = out + 64 * g
        for l in 0 ..< 32 {
            let v = loadU8(p, q + l)
            var q1 = v & 0x0F, q2 = v >> 4
            if let highBitsAt {
                let h = loadU8(p, highBitsAt + l)
                q1 += (h & u1) != 0 ? 16 : 0
                q2 += (h & u2) != 0 ? 16 : 0
            }
            o[l] = d1 * Float(q1) - min1
            o[l + 32] = d2 * Float(q2) - min2
        }
    }
}

extension BlockQ4_K: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        // Layout: d @0, dmin @2, scales[12] @4, qs[128] @16.
        try decodeEachBlock(type, src, dst) { p, out in
            decodeScaleMinK(p, out, quantsAt: 16, highBitsAt: nil)
        }
    }
}

extension BlockQ5_K: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        // Layout: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
        try decodeEachBlock(type, src, dst) { p, out in
            decodeScaleMinK(p, out, quantsAt: 48, highBitsAt: 16)
        }
    }
}

extension BlockQ6_K: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        // Layout: ql[128] @0, qh[64] @128, scales[16] @192, d @208.
        try decodeEachBlock(type, src, dst) { p, out in
            let d = loadHalf(p, 208)
            for half in 0 ..< 2 {
                let ql = 64 * half, qh = 128 + 32 * half, sc = 192 + 8 * half
                let o = out + 128 * half
                for l in 0 ..< 32 {
                    let si = sc + l / 16
                    let a = loadU8(p, ql + l), c = loadU8(p, ql + l + 32), h = loadU8(p, qh + l)
                    let q1 = Int32((a & 0x0F) | ((h & 3) << 4)) - 32
                    let q2 = Int32((c & 0x0F) | (((h >> 2) & 3) << 4)) - 32
                    let q3 = Int32((a >> 4) | (((h >> 4) & 3) << 4)) - 32
                    let q4 = Int32((c >> 4) | (((h >> 6) & 3) << 4)) - 32
                    o[l] = d * Float(loadI8(p, si)) * Float(q1)
                    o[l + 32] = d * Float(loadI8(p, si + 2)) * Float(q2)
                    o[l + 64] = d * Float(loadI8(p, si + 4)) * Float(q3)
                    o[l + 96] = d * Float(loadI8(p, si + 6)) * Float(q4)
                }
            }
        }
    }
}

extension BlockQ8_K: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        // Layout: d (float) @0, qs[256] @4, bsums[16] @260 (not needed to decode).
        try decodeEachBlock(type, src, dst) { p, out in
            let d = Float(bitPattern: loadU32(p, 0))
            for j in 0 ..< 256 { out[j] = d * Float(loadI8(p, 4 + j)) }
        }
    }
}

extension BlockIQ4_XS: QuantFormat {
    public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
    {
        // Layout: d @0, scales_h @2, scales_l[4] @4, qs[128] @8.
        try decodeEachBlock(type, src, dst) { p, out in
            let kv = kvaluesIQ4NL
            let d = loadHalf(p, 0)
            let scalesH = loadU16(p, 2)
            for ib in 0 ..< 8 {
                let low = Int32((loadU8(p, 4 + ib / 2) >> UInt8(4 * (ib % 2))) & 0x0F)
                let high = Int32((scalesH >> UInt16(2 * ib)) & 3)
                let dl = d * Float((low | (high << 4)) - 32)
                let q = 8 + 16 * ib, o = out + 32 * ib
                decodeNibblePairs(p, at: q, o) { v in dl * kv[Int(v)] }
            }
        }
    }
}
