/*
 * pack.c — portable packing of weight rows for the int8 kernels (shared by the AVX2 and AVX-512 levels).
 *
 * Packed layout of one group of 16 weight rows, per sub-block j (SB = 32 elements, 16 for Q6_K):
 *   q   [SB/4][16 rows][4 bytes]  the sub-block's quants as u8 (lane r = row r, 4 consecutive k)
 *   q2  [SB/4][16 rows][4 bytes]  only for the AVX2 maddubs Q8_0 variant: the signed quants
 *   sw  float[16]                 weight scale of the sub-block per row   (d, or d*sc_j for K-quants)
 *   ow  float[16]                 weight offset per row                   (m for Q4_1, dmin*m_j for Q4_K)
 * Rows past the end of the range are zero (weights and scales), so their lanes compute zeros.
 *
 * Quant encodings: Q4_0/Q4_1/Q4_K nibbles 0..15; Q6_K 0..63 (the -32 is in the activation start);
 * Q8_0 either w+128 (u8, start -128·Σx; VNNI) or |w| with the signed w in q2 (maddubs sign trick).
 */
#include "pack.h"

#pragma STDC FP_CONTRACT OFF

/* Quants (SB bytes, u8 encoding), scale and offset of sub-block j of one weight row. */
static void subblock(int type, const uint8_t *row, int j, int q8mode, uint8_t *q, uint8_t *q2, float *s, float *o) {
    *o = 0.0f;
    switch (type) {
    case SPK_TYPE_Q4_0:
    case SPK_TYPE_Q4_1: {
        const size_t bytes = type == SPK_TYPE_Q4_0 ? SPK_Q4_0_BYTES : SPK_Q4_1_BYTES;
        const uint8_t *b = row + (size_t)j * bytes;
        const uint8_t *qs = b + (type == SPK_TYPE_Q4_0 ? 2 : 4);
        for (int l = 0; l < 16; l++) {
            q[l] = qs[l] & 0x0F;
            q[l + 16] = qs[l] >> 4;
        }
        *s = spk_f16_to_f32(spk_rd16(b));
        if (type == SPK_TYPE_Q4_1) *o = spk_f16_to_f32(spk_rd16(b + 2));
        break;
    }
    case SPK_TYPE_Q8_0: {
        const uint8_t *b = row + (size_t)j * SPK_Q8_0_BYTES;
        const int8_t *qs = (const int8_t *)(b + 2);
        for (int l = 0; l < 32; l++) {
            if (q8mode == SPK_Q8_U8) {
                q[l] = (uint8_t)(qs[l] + 128);
            } else {
                q[l] = (uint8_t)(qs[l] < 0 ? -qs[l] : qs[l]);
                q2[l] = (uint8_t)qs[l];
            }
        }
        *s = spk_f16_to_f32(spk_rd16(b));
        break;
    }
    case SPK_TYPE_Q4_K: {
        const uint8_t *b = row + (size_t)(j >> 3) * SPK_Q4_K_BYTES;
        const int i = j & 7;
        int sc, mn;
        spk_q4k_scale_min(i, b + 4, &sc, &mn);
        const uint8_t *qs = b + 16 + (i >> 1) * 32;
        const int shift = (i & 1) * 4;
        for (int l = 0; l < 32; l++) q[l] = (qs[l] >> shift) & 0x0F;
        *s = spk_f16_to_f32(spk_rd16(b)) * (float)sc;
        *o = spk_f16_to_f32(spk_rd16(b + 2)) * (float)mn;
        break;
    }
    case SPK_TYPE_Q6_K: {
        const uint8_t *b = row + (size_t)(j >> 4) * SPK_Q6_K_BYTES;
        const int i = j & 15;
        for (int l = 0; l < 16; l++) {
            const int e = i * 16 + l;
            const int h = e / 128, r = e % 128, quarter = r / 32, p = r % 32;
            const uint8_t lq = b[h * 64 + (quarter & 1) * 32 + p];
            const uint8_t hq = b[128 + h * 32 + p];
            const int lo = quarter < 2 ? (lq & 0x0F) : (lq >> 4);
            q[l] = (uint8_t)(lo | (((hq >> (2 * quarter)) & 3) << 4));
        }
        *s = spk_f16_to_f32(spk_rd16(b + 208)) * (float)((const int8_t *)(b + 192))[i];
        break;
    }
    default: memset(q, 0, 32); *s = 0.0f; break;
    }
}

void spk_pack_q8_portable(int type, const uint8_t *W, size_t row_bytes, int n_first, int nrows, int j0, int nsb,
                          int q8mode, uint8_t *out) {
    const int sb = spk_q8_subblock(type);
    const size_t stride = spk_pack_q8_stride(type, q8mode);
    const int two = type == SPK_TYPE_Q8_0 && q8mode == SPK_Q8_SIGN;
    for (int jj = 0; jj < nsb; jj++) {
        uint8_t *dst = out + (size_t)jj * stride;
        float *sw = (float *)(dst + sb * 16 * (two ? 2 : 1));
        float *ow = sw + 16;
        for (int r = 0; r < 16; r++) {
            uint8_t q[32], q2[32];
            float s = 0.0f, o = 0.0f;
            if (r < nrows) {
                subblock(type, W + (size_t)(n_first + r) * row_bytes, j0 + jj, q8mode, q, q2, &s, &o);
            } else {
                memset(q, 0, sizeof q);
                memset(q2, 0, sizeof q2);
            }
            for (int t = 0; t < sb / 4; t++) {
                memcpy(dst + t * 64 + r * 4, q + 4 * t, 4);
                if (two) memcpy(dst + sb * 16 + t * 64 + r * 4, q2 + 4 * t, 4);
            }
            sw[r] = s;
            ow[r] = o;
        }
    }
}
