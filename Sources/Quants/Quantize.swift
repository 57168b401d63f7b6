// Reference quantizers, following ggml's `quantize_row_*_ref` (the deterministic, importance-free
// variants used when no imatrix is given), rewritten from their description in ggml-quants.c.
//
// Each kernel encodes blocks of `blockSize` floats from `x` into `typeSize`-byte blocks at `y`, one
// at a time when called by `encodeEachBlock`. Inputs were validated (whole blocks, all finite) by
// `withValidatedEncode`.

// MARK: - 32-element blocks

/// The scale of Q4_0 and Q5_0: `d = m / divisor`, where `m` is the first of the 32 values at `x`
/// of largest magnitude (with its sign), stored as a half at `y`. Returns `1 / d` (0 when `d` is 0).
@inline(__always)
private func storeSymmetricScale(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, divisor: Float) -> Float {
    var amax: Float = 0, maxValue: Float = 0
    for j in 0 ..< 32 where amax < abs(x[j]) {
        amax = abs(x[j])
        maxValue = x[j]
    }
    let d = maxValue / divisor
    storeHalf(y, 0, d)
    return d != 0 ? 1 / d : 0
}

/// The scale and offset of Q4_1 and Q5_1: `d = (hi - lo) / maxLevel` over the 32 values at `x`,
/// stored as halves `d` at `y` and `lo` at `y + 2`. Returns `lo` and `1 / d` (0 when `d` is 0).
@inline(__always)
private func storeRangeScale(
    _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, maxLevel: Float
) -> (lo: Float, id: Float) {
    var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
    for j in 0 ..< 32 {
        if x[j] < lo { lo = x[j] }
        if x[j] > hi { hi = x[j] }
    }
    let d = (hi - lo) / maxLevel
    storeHalf(y, 0, d)
    storeHalf(y, 2, lo)
    return (lo, d != 0 ? 1 / d : 0)
}

/// Stores the 4-bit levels of the 32 values at `x` as 16 bytes at `y + offset`: byte `j` holds
/// `level(x[j]) | level(x[j + 16]) << 4` (Q4_0, Q4_1).
@inline(__always)
private func storeLevelPairs(
    _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, at offset: Int, _ level: (Float) -> UInt8
) {
    for j in 0 ..< 16 {
        let q0 = level(x[j]), q1 = level(x[j + 16])
        storeU8(y, offset + j, q0 | (q1 << 4))
    }
}

/// Stores the 5-bit levels of the 32 values at `x` (Q5_0, Q5_1): their low nibbles paired as in
/// `storeLevelPairs` at `y + nibblesAt`, and bit 4 of level `j` as bit `j` of the little-endian
/// `UInt32` at `y + highBitsAt`.
@inline(__always)
private func storeFiveBitLevels(
    _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, highBitsAt: Int, nibblesAt: Int,
    _ level: (Float) -> UInt8
) {
    var qh: UInt32 = 0
    for j in 0 ..< 16 {
        let q0 = level(x[j]), q1 = level(x[j + 16])
        storeU8(y, nibblesAt + j, (q0 & 0x0F) | ((q1 & 0x0F) << 4))
        qh |= (UInt32(q0 & 0x10) >> 4) << UInt32(j)
        qh |= (UInt32(q1 & 0x10) >> 4) << UInt32(j + 16)
    }
    y.storeBytes(of: qh.littleEndian, toByteOffset: highBitsAt, as: UInt32.self)
}

extension BlockQ4_0: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try encodeEachBlock(type, src, dst) { x, y in
            let id = storeSymmetricScale(x, y, divisor: -8)
            storeLevelPairs(x, y, at: 2) { v in
                UInt8(bitPattern: min(15, Int8(truncatingIfNeeded: truncatingInt32(v * id + 8.5))))
            }
        }
    }
}

extension BlockQ4_1: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try encodeEachBlock(type, src, dst) { x, y in
            let (lo, id) = storeRangeScale(x, y, maxLevel: 15)
            storeLevelPairs(x, y, at: 4) { v in
                UInt8(bitPattern: min(15, Int8(truncatingIfNeeded: truncatingInt32((v - lo) * id + 0.5))))
            }
        }
    }
}

extension BlockQ5_0: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try encodeEachBlock(type, src, dst) { x, y in
            let id = storeSymmetricScale(x, y, divisor: -16)
            storeFiveBitLevels(x, y, highBitsAt: 2, nibblesAt: 6) { v in
                UInt8(bitPattern: min(31, Int8(truncatingIfNeeded: truncatingInt32(v * id + 16.5))))
            }
        }
    }
}

extension BlockQ5_1: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try encodeEachBlock(type, src, dst) { x, y in
            let (lo, id) = storeRangeScale(x, y, maxLevel: 31)
            storeFiveBitLevels(x, y, highBitsAt: 4, nibblesAt: 8) { v in
                // ggml casts straight to uint8_t here (no clamp to 31).
                UInt8(truncatingIfNeeded: truncatingInt32((v - lo) * id + 0.5))
            }
        }
    }
}

extension BlockQ8_0: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try encodeEachBlock(type, src, dst) { x, y in
            var amax: Float = 0
            for j in 0 ..< 32 { amax = amax > abs(x[j]) ? amax : abs(x[j]) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(y, 0, d)
            for j in 0 ..< 32 {
                // roundf: half away from zero.
                let q = truncatingInt32((x[j] * id).rounded(.toNearestOrAwayFromZero))
                y.storeBytes(of: Int8(truncatingIfNeeded: q), toByteOffset: 2 + j, as: Int8.self)
            }
        }
    }
}

// MARK: - K-quants

/// Packs 256 2-bit values `L` as ggml's Q2_K/Q3_K `qs`: byte `32h + l`, bits `2s`, holds element
/// `128h + 32s + l`.
@inline(__always)
private func pack2Bit<T: FixedWidthInteger>(_ L: UnsafePointer<T>, _ qs: UnsafeMutableRawPointer) {
    for h in 0 ..< 2 {
        let j = 128 * h
        for l in 0 ..< 32 {
            let a = UInt8(truncatingIfNeeded: L[j + l]), b = UInt8(truncatingIfNeeded: L[j + l + 32])
            let c = UInt8(truncatingIfNeeded: L[j + l + 64]), d = UInt8(truncatingIfNeeded: L[j + l + 96])
            storeU8(qs, 32 * h + l, a | (b << 2) | (c << 4) | (d << 6))
        }
    }
}

extension BlockQ2_K: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try withValidatedEncode(type, src, dst) { xs, ys, blocks in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 16) { lBuf in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 16 + 16 + 16) { fBuf in
                    let L = lBuf.baseAddress!, Laux = L + 256
                    let weights = fBuf.baseAddress!, mins = weights + 16, scales = weights + 32
                    let q4scale: Float = 15
                    for b in 0 ..< blocks {
                        let x = xs + 256 * b, y = ys + 84 * b
                        var maxScale: Float = 0, maxMin: Float = 0
                        for j in 0 ..< 16 {
                            for l in 0 ..< 16 { weights[l] = abs(x[16 * j + l]) }
                            let r = makeQKX2Quants(
                                16, 3, x + 16 * j, weights, L + 16 * j, Laux,
                                rmin: -0.5, rdelta: 0.1, nstep: 15, useMad: true)
                            scales[j] = r.scale
                            mins[j] = r.theMin
                            if r.scale > maxScale { maxScale = r.scale }
                            if r.theMin > maxMin { maxMin = r.theMin }
                        }
                        // scales[16] @0, qs[64] @16, d @80, dmin @82
                        if maxScale > 0 {
                            let iscale = q4scale / maxScale
                            for j in 0 ..< 16 {
                                storeU8(y, j, UInt8(truncatingIfNeeded: nearestInt(iscale * scales[j])))
                            }
                            storeHalf(y, 80, maxScale / q4scale)
                        } else {
                            for j in 0 ..< 16 { storeU8(y, j, 0) }
                            storeHalf(y, 80, 0)
                        }
                        if maxMin > 0 {
                            let iscale = q4scale / maxMin
                            for j in 0 ..< 16 {
                                let l = nearestInt(iscale * mins[j])
                                storeU8(y, j, loadU8(y, j) | UInt8(truncatingIfNeeded: l << 4))
                            }
                            storeHalf(y, 82, maxMin / q4scale)
                        } else {
                            storeHalf(y, 82, 0)
                        }
                        let dAll = loadHalf(y, 80), dminAll = loadHalf(y, 82)
                        for j in 0 ..< 16 {
                            let sc = loadU8(y, j)
                            let d = dAll * Float(sc & 0x0F)
                            if d == 0 { continue }
                            let dm = dminAll * Float(sc >> 4)
                            for i in 0 ..< 16 {
                                let l = clamp(nearestInt((x[16 * j + i] + dm) / d), 0, 3)
                                L[16 * j + i] = UInt8(truncatingIfNeeded: l)
                            }
                        }
                        pack2Bit(L, y + 16)
                    }
                }
            }
        }
    }
}

/// The steps Q3_K and Q6_K share for each of `blocks` 256-element super-blocks of `typeSize`
/// bytes: the levels `L` and scale of each of the 16 groups of 16 elements from `groupScale`, then
/// `pack(x, y, L, scales, maxScale, maxAbsScale)`, where `maxScale` is the first scale of largest
/// magnitude (with its sign) and `maxAbsScale` that magnitude.
@inline(__always)
private func quantizeGroupScaleBlocks(
    _ xs: UnsafePointer<Float>, _ ys: UnsafeMutableRawPointer, _ blocks: Int, typeSize: Int,
    groupScale: (UnsafePointer<Float>, UnsafeMutablePointer<Int8>) -> Float,
    pack: (UnsafePointer<Float>, UnsafeMutableRawPointer, UnsafeMutablePointer<Int8>, UnsafeMutablePointer<Float>,
           Float, Float) -> Void
) {
    withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { lBuf in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { sBuf in
            let L = lBuf.baseAddress!, scales = sBuf.baseAddress!
            for b in 0 ..< blocks {
                let x = xs + 256 * b, y = ys + typeSize * b
                var maxScale: Float = 0, maxAbsScale: Float = 0
                for j in 0 ..< 16 {
                    let scale = groupScale(x + 16 * j, L + 16 * j)
                    scales[j] = scale
                    if abs(scale) > maxAbsScale {
                        maxAbsScale = abs(scale)
                        maxScale = scale
                    }
                }
                pack(x, y, L, scales, maxScale, maxAbsScale)
            }
        }
    }
}

extension BlockQ3_K: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try withValidatedEncode(type, src, dst) { xs, ys, blocks in
            quantizeGroupScaleBlocks(xs, ys, blocks, typeSize: 110) { x, L in
                makeQ3Quants(16, 4, x, L)
            } pack: { x, y, L, scales, maxScale, _ in
                // hmask[32] @0, qs[64] @32, scales[12] @96, d @108
                for k in 0 ..< 12 { storeU8(y, 96 + k, 0) }
                if maxScale != 0 {
                    let iscale = -32 / maxScale
                    for j in 0 ..< 16 {
                        let l8 = Int8(truncatingIfNeeded: nearestInt(iscale * scales[j]))
                        var l = UInt8(truncatingIfNeeded: clamp(Int32(l8), -32, 31) + 32)
                        if j < 8 {
                            storeU8(y, 96 + j, l & 0x0F)
                        } else {
                            storeU8(y, 96 + j - 8, loadU8(y, 96 + j - 8) | ((l & 0x0F) << 4))
                        }
                        l >>= 4
                        storeU8(y, 96 + 8 + j % 4, loadU8(y, 96 + 8 + j % 4) | (l << UInt8(2 * (j / 4))))
                    }
                    storeHalf(y, 108, 1 / iscale)
                } else {
                    storeHalf(y, 108, 0)
                }
                let dAll = loadHalf(y, 108)
                for j in 0 ..< 16 {
                    let low = j < 8 ? loadU8(y, 96 + j) & 0x0F : loadU8(y, 96 + j - 8) >> 4
                    let high = (loadU8(y, 96 + 8 + j % 4) >> UInt8(2 * (j / 4))) & 3
                    let sc = Int32(low | (high << 4)) - 32
                    let d = dAll * Float(sc)
                    if d == 0 { continue }
                    for i in 0 ..< 16 {
                        let l = clamp(nearestInt(x[16 * j + i] / d), -4, 3)
                        L[16 * j + i] = Int8(truncatingIfNeeded: l + 4)
                    }
                }
                for k in 0 ..< 32 { storeU8(y, k, 0) }
                var m = 0
                var hm: UInt8 = 1
                for j in 0 ..< 256 {
                    if L[j] > 3 {
                        storeU8(y, m, loadU8(y, m) | hm)
                        L[j] -= 4
                    }
                    m += 1
                    if m == 32 {
                        m = 0
                        hm <<= 1
                    }
                }
                pack2Bit(L, y + 32)
            }
        }
    }
}

/// Encodes eight 6-bit (scale, min) pairs into the 12 `scales` bytes of Q4_K/Q5_K, the inverse of
/// `scaleMinK4`.
@inline(__always)
private func packScaleMinK4(_ ls: UInt8, _ lm: UInt8, _ j: Int, _ s: UnsafeMutableRawPointer) {
    if j < 4 {
        storeU8(s, j, ls)
        storeU8(s, j + 4, lm)
    } else {
        storeU8(s, j + 4, (ls & 0x0F) | ((lm & 0x0F) << 4))
        storeU8(s, j - 4, loadU8(s, j - 4) | ((ls >> 4) << 6))
        storeU8(s, j, loadU8(s, j) | ((lm >> 4) << 6))
    }
}

/// The shared first half of the Q4_K and Q5_K reference quantizers: per sub-block (scale, min)
/// search, 6-bit encoding of the scales into `y[4..<16]`, `d`/`dmin` into `y[0..<4]`, and the final
/// levels (`0 ... nmax`) into `L`.
@inline(__always)
private func quantizeKScaleMin(
    _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, nmax: Int32, rmin: Float, nstep: Int,
    _ L: UnsafeMutablePointer<UInt8>, _ Laux: UnsafeMutablePointer<UInt8>,
    _ weights: UnsafeMutablePointer<Float>, _ mins: UnsafeMutablePointer<Float>, _ scales: UnsafeMutablePointer<Float>
) {
    var maxScale: Float = 0, maxMin: Float = 0
    for j in 0 ..< 8 {
        var sumX2: Float = 0
        for l in 0 ..< 32 { sumX2 += x[32 * j + l] * x[32 * j + l] }
        let avX = (sumX2 / 32).squareRoot()
        for l in 0 ..< 32 { weights[l] = avX + abs(x[32 * j + l]) }
        let r = makeQKX2Quants(
            32, nmax, x + 32 * j, weights, L + 32 * j, Laux, rmin: rmin, rdelta: 0.1, nstep: nstep, useMad: false)
        scales[j] = r.scale
        mins[j] = r.theMin
        if r.scale > maxScale { maxScale = r.scale }
        if r.theMin > maxMin { maxMin = r.theMin }
    }
    let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
    let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
    let s = y + 4
    for j in 0 ..< 8 {
        let ls = min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * scales[j])))
        let lm = min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * mins[j])))
        packScaleMinK4(ls, lm, j, s)
    }
    storeHalf(y, 0, maxScale / 63)
    storeHalf(y, 2, maxMin / 63)
    let dAll = loadHalf(y, 0), dminAll = loadHalf(y, 2)
    for j in 0 ..< 8 {
        let (sc, m) = scaleMinK4(j, s)
        let d = dAll * Float(sc)
        if d == 0 { continue }
        let dm = dminAll * Float(m)
        for i in 0 ..< 32 {
            L[32 * j + i] = UInt8(truncatingIfNeeded: clamp(nearestInt((x[32 * j + i] + dm) / d), 0, nmax))
        }
    }
}

/// The steps Q4_K and Q5_K share for each of `blocks` 256-element super-blocks of `typeSize`
/// bytes: zero the 12 scale bytes at offset 4 (`packScaleMinK4` ORs into them), choose and store
/// the scales and mins with `quantizeKScaleMin`, then `pack` the 256 levels `L` into the block.
@inline(__always)
private func quantizeKScaleMinBlocks(
    _ xs: UnsafePointer<Float>, _ ys: UnsafeMutableRawPointer, _ blocks: Int, typeSize: Int,
    nmax: Int32, rmin: Float, nstep: Int, _ pack: (UnsafeMutableRawPointer, UnsafePointer<UInt8>) -> Void
) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 32) { lBuf in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32 + 8 + 8) { fBuf in
            let L = lBuf.baseAddress!, Laux = L + 256
            let weights = fBuf.baseAddress!, mins = weights + 32, scales = weights + 40
            for b in 0 ..< blocks {
                let x = xs + 256 * b, y = ys + typeSize * b
                for k in 4 ..< 16 { storeU8(y, k, 0) }
                quantizeKScaleMin(x, y, nmax: nmax, rmin: rmin, nstep: nstep, L, Laux, weights, mins, scales)
                pack(y, L)
            }
        }
    }
}

extension BlockQ4_K: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try withValidatedEncode(type, src, dst) { xs, ys, blocks in
            quantizeKScaleMinBlocks(xs, ys, blocks, typeSize: 144, nmax: 15, rmin: -1, nstep: 20) { y, L in
                for g in 0 ..< 4 {
                    for l in 0 ..< 32 {
                        storeU8(y, 16 + 32 * g + l, L[64 * g + l] | (L[64 * g + l + 32] << 4))
                    }
                }
            }
        }
    }
}

extension BlockQ5_K: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try withValidatedEncode(type, src, dst) { xs, ys, blocks in
            quantizeKScaleMinBlocks(xs, ys, blocks, typeSize: 176, nmax: 31, rmin: -0.5, nstep: 15) { y, L in
                // qh[32] @16, qs[128] @48
                for k in 0 ..< 32 { storeU8(y, 16 + k, 0) }
                var m1: UInt8 = 1, m2: UInt8 = 2
                for g in 0 ..< 4 {
                    for j in 0 ..< 32 {
                        var l1 = L[64 * g + j], l2 = L[64 * g + j + 32]
                        var h = loadU8(y, 16 + j)
                        if l1 > 15 { l1 -= 16; h |= m1 }
                        if l2 > 15 { l2 -= 16; h |= m2 }
                        storeU8(y, 16 + j, h)
                        storeU8(y, 48 + 32 * g + j, l1 | (l2 << 4))
                    }
                    m1 <<= 2
                    m2 <<= 2
                }
            }
        }
    }
}

extension BlockQ6_K: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try withValidatedEncode(type, src, dst) { xs, ys, blocks in
            quantizeGroupScaleBlocks(xs, ys, blocks, typeSize: 210) { x, L in
                makeQXQuants(16, 32, x, L)
            } pack: { x, y, L, scales, maxScale, maxAbsScale in
                // ql[128] @0, qh[64] @128, scales[16] @192, d @208
                if maxAbsScale < groupMaxEps {
                    y.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
                    return
                }
                let iscale = -128 / maxScale
                storeHalf(y, 208, 1 / iscale)
                for ib in 0 ..< 16 {
                    let s = Int8(truncatingIfNeeded: min(127, nearestInt(iscale * scales[ib])))
                    y.storeBytes(of: s, toByteOffset: 192 + ib, as: Int8.self)
                }
                let dAll = loadHalf(y, 208)
                for j in 0 ..< 16 {
                    let d = dAll * Float(loadI8(y, 192 + j))
                    if d == 0 { continue }
                    for i in 0 ..< 16 {
                        let l = clamp(nearestInt(x[16 * j + i] / d), -32, 31)
                        L[16 * j + i] = Int8(truncatingIfNeeded: l + 32)
                    }
                }
                for h in 0 ..< 2 {
                    let j = 128 * h
                    for l in 0 ..< 32 {
                        let a = UInt8(bitPattern: L[j + l]), c = UInt8(bitPattern: L[j + l + 32])
                        let e = UInt8(bitPattern: L[j + l + 64]), f = UInt8(bitPattern: L[j + l + 96])
                        storeU8(y, 64 * h + l, (a & 0x0F) | ((e & 0x0F) << 4))
                        storeU8(y, 64 * h + l + 32, (c & 0x0F) | ((f & 0x0F) << 4))
                        storeU8(y, 128 + 32 * h + l, (a >> 4) | ((c >> 4) << 2) | ((e >> 4) << 4) | ((f >> 4) << 6))
                    }
                }
            }
        }
    }
}

extension BlockQ8_K: QuantEncoder {
    public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
    {
        try encodeEachBlock(type, src, dst) { x, y in
            // d (float) @0, qs[256] @4, bsums[16] @260
            var maxValue: Float = 0, amax: Float = 0
            for j in 0 ..< 256 where abs(x[j]) > amax {
                amax = abs(x[j])
                maxValue = x[j]
            }
            if amax == 0 {
                // ggml leaves bsums untouched here; we zero the whole block.
                y.initializeMemory(as: UInt8.self, repeating: 0, count: 292)
                return
            }
            let iscale = -127 / maxValue
            for j in 0 ..< 256 {
                let v = Int8(truncatingIfNeeded: min(127, nearestInt(iscale * x[j])))
                y.storeBytes(of: v, toByteOffset: 4 + j, as: Int8.self)
            }
            for j in 0 ..< 16 {
                var sum: Int16 = 0
                for i in 0 ..< 16 { sum &+= Int16(loadI8(y, 4 + 16 * j + i)) }
                y.storeBytes(of: sum.littleEndian, toByteOffset: 260 + 2 * j, as: Int16.self)
            }
            y.storeBytes(of: (1 / iscale).bitPattern.littleEndian, toByteOffset: 0, as: UInt32.self)
        }
    }
}
