// The scale searches behind ggml's reference K-quant quantizers (`make_qx_quants`,
// `make_q3_quants`, `make_qkx2_quants`), rewritten from their description in ggml-quants.c.
//
// Float expressions keep ggml's evaluation order (C's left-to-right `a*b*c` is `(a*b)*c`, an int
// operand is converted to float where C converts it) and are never fused, so our bytes match a
// ggml build compiled without floating-point contraction (`-ffp-contract=off`). Builds that fuse
// multiply-adds (GCC's default for x86 with FMA) can differ in rare last-bit ties.
//
// All functions work on a small group (`n` <= 32) through raw pointers owned by the caller.

/// ggml's `GROUP_MAX_EPS`: groups whose largest magnitude is below it are all-zero.
let groupMaxEps: Float = 1e-15

/// ggml's `nearest_int`: round to nearest, ties to even, via the 1.5 * 2^23 magic constant.
///
/// Exact for |f| <= 2^22; for larger or non-finite inputs it returns a deterministic value in
/// -2^22 ..< 2^22 (as the C does with assertions off) and never traps.
@inline(__always)
func nearestInt(_ f: Float) -> Int32 {
    let v = f + 12_582_912
    return (Int32(bitPattern: v.bitPattern) & 0x007F_FFFF) - 0x0040_0000
}

/// C's float-to-int conversion as x86 performs it (`cvttss2si`): truncation toward zero, with NaN
/// and out-of-range values giving `Int32.min`. Used where ggml casts `(int8_t)(float)`.
@inline(__always)
func truncatingInt32(_ f: Float) -> Int32 {
    guard f.isFinite, f > -2_147_483_904, f < 2_147_483_648 else { return Int32.min }
    return Int32(f)
}

@inline(__always)
func clamp(_ v: Int32, _ lo: Int32, _ hi: Int32) -> Int32 { max(lo, min(hi, v)) }

/// The first value of largest magnitude in `x[0 ..< n]` (with its sign), the step that opens
/// ggml's `make_qx_quants` and `make_q3_quants`; nil, with `L[0 ..< n]` set to 0, when that
/// magnitude is below `groupMaxEps` (the group is all zeros).
@inline(__always)
func signedMaxOrZeroLevels(_ n: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>) -> Float? {
    var maxValue: Float = 0, amax: Float = 0
    for i in 0 ..< n {
        let ax = abs(x[i])
        if ax > amax { amax = ax; maxValue = x[i] }
    }
    if amax < groupMaxEps {
        for i in 0 ..< n { L[i] = 0 }
        return nil
    }
    return maxValue
}

/// `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL)`: a symmetric scale for the group with
/// weights `x[i]^2`, trying 18 perturbed inverse scales. Writes `L[i]` in `0 ..< 2 * nmax`.
func makeQXQuants(_ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>) -> Float {
    guard let maxValue = signedMaxOrZeroLevels(n, x, L) else { return 0 }
    let fnmax = Float(nmax)
    var iscale = Float(-nmax) / maxValue
    var sumlx: Float = 0, suml2: Float = 0
    for i in 0 ..< n {
        let l = clamp(nearestInt(iscale * x[i]), -nmax, nmax - 1)
        L[i] = Int8(truncatingIfNeeded: l + nmax)
        let w = x[i] * x[i]
        sumlx += w * x[i] * Float(l)
        suml2 += w * Float(l) * Float(l)
    }
    var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
    var best = scale * sumlx
    for step in -9 ... 9 where step != 0 {
        iscale = -(fnmax + 0.1 * Float(step)) / maxValue
        sumlx = 0
        suml2 = 0
        for i in 0 ..< n {
            let l = clamp(nearestInt(iscale * x[i]), -nmax, nmax - 1)
            let w = x[i] * x[i]
            sumlx += w * x[i] * Float(l)
            suml2 += w * Float(l) * Float(l)
        }
        if suml2 > 0 && sumlx * sumlx > best * suml2 {
            for i in 0 ..< n {
                L[i] = Int8(truncatingIfNeeded: nmax + clamp(nearestInt(iscale * x[i]), -nmax, nmax - 1))
            }
            scale = sumlx / suml2
            best = scale * sumlx
        }
    }
    return scale
}

/// `make_q3_quants(n, nmax, x, L, do_rmse = true)`: a symmetric scale refined by up to five
/// passes of per-element coordinate descent. Writes `L[i]` in `0 ..< 2 * nmax`.
func makeQ3Quants(_ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>) -> Float {
    guard let maxValue = signedMaxOrZeroLevels(n, x, L) else { return 0 }
    let iscale = Float(-nmax) / maxValue
    var sumlx: Float = 0, suml2: Float = 0
    for i in 0 ..< n {
        let l = clamp(nearestInt(iscale * x[i]), -nmax, nmax - 1)
        L[i] = Int8(truncatingIfNeeded: l)
        let w = x[i] * x[i]
        sumlx += w * x[i] * Float(l)
        suml2 += w * Float(l) * Float(l)
    }
    for _ in 0 ..< 5 {
        var changed = 0
        for i in 0 ..< n {
            let w = x[i] * x[i]
            let li = Float(L[i])
            var slx = sumlx - w * x[i] * li
            if slx > 0 {
                var sl2 = suml2 - w * li * li
                let newL = clamp(nearestInt(x[i] * sl2 / slx), -nmax, nmax - 1)
                if newL != Int32(L[i]) {
                    slx += w * x[i] * Float(newL)
                    sl2 += w * Float(newL) * Float(newL)
                    if sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        L[i] = Int8(truncatingIfNeeded: newL)
                        sumlx = slx
                        suml2 = sl2
                        changed += 1
                    }
                }
            }
        }
        if changed == 0 { break }
    }
    for i in 0 ..< n { L[i] = Int8(truncatingIfNeeded: Int32(L[i]) + nmax) }
    return suml2 > 0 ? sumlx / suml2 : 0
}

/// `make_qkx2_quants`: an asymmetric (scale, min) pair for the group minimizing the weighted
/// squared (or absolute, `useMad`) error, scanning `nstep + 1` candidate inverse scales
/// `(rmin + rdelta * is + nmax) / (max - min)`. Writes `L[i]` in `0 ... nmax` and returns
/// `(scale, theMin)` where values decode as `scale * L - theMin` (`theMin >= 0`).
func makeQKX2Quants(
    _ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
    _ L: UnsafeMutablePointer<UInt8>, _ Laux: UnsafeMutablePointer<UInt8>,
    rmin: Float, rdelta: Float, nstep: Int, useMad: Bool
) -> (scale: Float, theMin: Float) {
    var minValue = x[0], maxValue = x[0]
    var sumW = weights[0]
    var sumX = sumW * x[0]
    for i in 1 ..< n {
        if x[i] < minValue { minValue = x[i] }
        if x[i] > maxValue { maxValue = x[i] }
        let w = weights[i]
        sumW += w
        sumX += w * x[i]
    }
    if minValue > 0 { minValue = 0 }
    if maxValue == minValue {
        for i in 0 ..< n { L[i] = 0 }
        return (0, -minValue)
    }
    let fnmax = Float(nmax)
    var iscale = fnmax / (maxValue - minValue)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0 ..< n {
        let l = clamp(nearestInt(iscale * (x[i] - minValue)), 0, nmax)
        L[i] = UInt8(truncatingIfNeeded: l)
        var diff = scale * Float(l) + minValue - x[i]
        diff = useMad ? abs(diff) : diff * diff
        bestError += weights[i] * diff
    }
    if nstep < 1 { return (scale, -minValue) }
    for step in 0 ... nstep {
        iscale = (rmin + rdelta * Float(step) + fnmax) / (maxValue - minValue)
        var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
        for i in 0 ..< n {
            let l = clamp(nearestInt(iscale * (x[i] - minValue)), 0, nmax)
            Laux[i] = UInt8(truncatingIfNeeded: l)
            let w = weights[i], fl = Float(l)
            sumL += w * fl
            sumL2 += w * fl * fl
            sumXL += w * fl * x[i]
        }
        let D = sumW * sumL2 - sumL * sumL
        if D > 0 {
            var thisScale = (sumW * sumXL - sumX * sumL) / D
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D
            if thisMin > 0 {
                thisMin = 0
                thisScale = sumXL / sumL2
            }
            var curError: Float = 0
            for i in 0 ..< n {
                var diff = thisScale * Float(Laux[i]) + thisMin - x[i]
                diff = useMad ? abs(diff) : diff * diff
                curError += weights[i] * diff
            }
            if curError < bestError {
                for i in 0 ..< n { L[i] = Laux[i] }
                bestError = curError
                scale = thisScale
                minValue = thisMin
            }
        }
    }
    return (scale, -minValue)
}
