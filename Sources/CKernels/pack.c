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

static inline uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/*
 * Writes sub-block j of one weight row into lane r of a packed sub-block (four quants per dword,
 * shifted and masked a word at a time), and returns its scale and offset (K-quants: the caller
 * decodes the scales once per super-block).
 */
static void pack_row_subblock(int type, const uint8_t *row, int j, int q8mode, uint8_t *dst, int r, float *s,
                              float *o) {
    *o = 0.0f;
    uint8_t *lane = dst + 4 * r;
    switch (type) {
    case SPK_TYPE_Q4_0:
    case SPK_TYPE_Q4_1: {
        const size_t bytes = type == SPK_TYPE_Q4_0 ? SPK_Q4_0_BYTES : SPK_Q4_1_BYTES;
        const uint8_t *b = row + (size_t)j * bytes;
        const uint8_t *qs = b + (type == SPK_TYPE_Q4_0 ? 2 : 4);
        for (int t = 0; t < 4; t++) {
            const uint32_t w = rd32(qs + 4 * t), lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
            memcpy(lane + t * 64, &lo, 4);
            memcpy(lane + (4 + t) * 64, &hi, 4);
        }
        *s = spk_f16_to_f32(spk_rd16(b));
        if (type == SPK_TYPE_Q4_1) *o = spk_f16_to_f32(spk_rd16(b + 2));
        break;
    }
    case SPK_TYPE_Q8_0: {
        const uint8_t *b = row + (size_t)j * SPK_Q8_0_BYTES;
        const int8_t *qs = (const int8_t *)(b + 2);
        for (int t = 0; t < 8; t++) {
            if (q8mode == SPK_Q8_U8) {
                const uint32_t w = rd32(b + 2 + 4 * t) ^ 0x80808080u; /* w + 128 as u8 */
                memcpy(lane + t * 64, &w, 4);
            } else {
                for (int l = 0; l < 4; l++) {
                    const int8_t v = qs[4 * t + l];
                    lane[t * 64 + l] = (uint8_t)(v < 0 ? -v : v);
                    lane[512 + t * 64 + l] = (uint8_t)v;
                }
            }
        }
        *s = spk_f16_to_f32(spk_rd16(b));
        break;
    }
    case SPK_TYPE_Q4_K: {
        const uint8_t *b = row + (size_t)(j >> 3) * SPK_Q4_K_BYTES;
        const int i = j & 7;
        const uint8_t *qs = b + 16 + (i >> 1) * 32;
        const int shift = (i & 1) * 4;
        for (int t = 0; t < 8; t++) {
            const uint32_t w = (rd32(qs + 4 * t) >> shift) & 0x0F0F0F0Fu;
            memcpy(lane + t * 64, &w, 4);
        }
        *s = 0.0f; /* scales: decoded once per super-block by the caller */
        break;
    }
    case SPK_TYPE_Q6_K: {
        const uint8_t *b = row + (size_t)(j >> 4) * SPK_Q6_K_BYTES;
        const int i = j & 15;
        const int h = i / 8, quarter = (i % 8) / 2, p0 = 16 * (i % 2);
        for (int t = 0; t < 4; t++) {
            const int p = p0 + 4 * t;
            const uint32_t ql = rd32(b + h * 64 + (quarter & 1) * 32 + p) >> (quarter < 2 ? 0 : 4);
            const uint32_t qh = rd32(b + 128 + h * 32 + p) >> (2 * quarter);
            const uint32_t w = (ql & 0x0F0F0F0Fu) | ((qh & 0x03030303u) << 4);
            memcpy(lane + t * 64, &w, 4);
        }
        *s = 0.0f;
        break;
    }
    default: *s = 0.0f; break;
    }
}

void spk_pack_q8_portable(int type, const uint8_t *W, size_t row_bytes, int n_first, int nrows, int j0, int nsb,
                          int q8mode, uint8_t *out) {
    const size_t stride = spk_pack_q8_stride(type, q8mode);
    memset(out, 0, (size_t)nsb * stride); /* rows past nrows stay zero */
    for (int r = 0; r < nrows; r++) {
        const uint8_t *row = W + (size_t)(n_first + r) * row_bytes;
        float ks[16], ko[16]; /* K-quants: the scales of the current super-block, decoded once */
        int cur = -1;
        for (int jj = 0; jj < nsb; jj++) {
            const int j = j0 + jj;
            uint8_t *dst = out + (size_t)jj * stride;
            float *sw = (float *)(dst + stride - 128);
            float *ow = sw + 16;
            if (type == SPK_TYPE_Q4_K && j / 8 != cur) {
                cur = j / 8;
                const uint8_t *b = row + (size_t)cur * SPK_Q4_K_BYTES;
                const float d = spk_f16_to_f32(spk_rd16(b)), dmin = spk_f16_to_f32(spk_rd16(b + 2));
                for (int i = 0; i < 8; i++) {
                    int sc, mn;
                    spk_q4k_scale_min(i, b + 4, &sc, &mn);
                    ks[i] = d * (float)sc;
                    ko[i] = dmin * (float)mn;
                }
            } else if (type == SPK_TYPE_Q6_K && j / 16 != cur) {
                cur = j / 16;
                const uint8_t *b = row + (size_t)cur * SPK_Q6_K_BYTES;
                const float d = spk_f16_to_f32(spk_rd16(b + 208));
                for (int i = 0; i < 16; i++) ks[i] = d * (float)((const int8_t *)(b + 192))[i];
            }
            if (spk_is_kquant(type)) {
                float unused_s, unused_o;
                pack_row_subblock(type, row, j, q8mode, dst, r, &unused_s, &unused_o);
                const int i = type == SPK_TYPE_Q4_K ? (j & 7) : (j & 15);
                sw[r] = ks[i];
                ow[r] = type == SPK_TYPE_Q4_K ? ko[i] : 0.0f;
            } else {
                pack_row_subblock(type, row, j, q8mode, dst, r, &sw[r], &ow[r]);
            }
        }
    }
}
