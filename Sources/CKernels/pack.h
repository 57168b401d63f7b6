/*
 * pack.h — the packed weight layout of the int8 kernels (AVX2 and AVX-512 levels).
 *
 * Packed layout of one group of 16 weight rows, per sub-block j (SB = 32 elements, 16 for Q6_K):
 *   q   [SB/4][16 rows][4 bytes]  the sub-block's quants as u8 (lane r = row r, 4 consecutive k)
 *   q2  [SB/4][16 rows][4 bytes]  only for the AVX2 maddubs Q8_0 variant: the signed quants
 *   sw  float[16]                 weight scale of the sub-block per row   (d, or d*sc_j for K-quants)
 *   ow  float[16]                 weight offset per row                   (m for Q4_1, dmin*m_j for Q4_K)
 * Quant encodings: Q4_0/Q4_1/Q4_K nibbles 0..15; Q6_K 0..63 (the -32 is in the activation start);
 * Q8_0 either w+128 (u8, start -128·Σx; VNNI) or |w| with the signed w in q2 (maddubs sign trick).
 * Groups with fewer than 16 rows repeat their last row in the spare lanes, whose results are never
 * stored. The packers are the SIMD functions pack_q8_group / pack_*k_group in avx2.c and avx512.c; the
 * scalar reference does not pack (ref.c reads the blocks directly), and the cross-level tests compare
 * the two bit for bit.
 */
#ifndef SOFTPROMPTKIT_CKERNELS_PACK_H
#define SOFTPROMPTKIT_CKERNELS_PACK_H

#include "internal.h"

enum { SPK_Q8_U8 = 0, SPK_Q8_SIGN = 1 };

/* Bytes of one packed sub-block of a 16-row group. */
static inline size_t spk_pack_q8_stride(int type, int q8mode) {
    const int sb = spk_q8_subblock(type);
    const int planes = (type == SPK_TYPE_Q8_0 && q8mode == SPK_Q8_SIGN) ? 2 : 1;
    return (size_t)sb * 16 * planes + 128;
}

#endif
