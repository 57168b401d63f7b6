/*
 * ref.c — scalar reference kernels. These define the results: the SIMD levels must reproduce the
 * matmuls bit for bit (see the contracts in ckernels.h). Their weight decoding must match the Swift
 * reference dequantizer (Sources/Quants), which the tests check.
 * Written for clarity, not speed; they are also the fallback on non-x86 machines.
 */
#include "internal.h"

#pragma STDC FP_CONTRACT OFF

/* ---- Dequantization ------------------------------------------------------------------------------- */

static void deq_q4_0(const uint8_t *b, float *y) {
    const float d = spk_f16_to_f32(spk_rd16(b));
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static void deq_q4_1(const uint8_t *b, float *y) {
    const float d = spk_f16_to_f32(spk_rd16(b));
    const float m = spk_f16_to_f32(spk_rd16(b + 2));
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        const float p0 = (float)(qs[j] & 0x0F) * d; /* product, then sum: never fused */
        const float p1 = (float)(qs[j] >> 4) * d;
        y[j] = p0 + m;
        y[j + 16] = p1 + m;
    }
}

static void deq_q8_0(const uint8_t *b, float *y) {
    const float d = spk_f16_to_f32(spk_rd16(b));
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
}

static void deq_q4_K(const uint8_t *b, float *y) {
    const float d = spk_f16_to_f32(spk_rd16(b));
    const float dmin = spk_f16_to_f32(spk_rd16(b + 2));
    const uint8_t *scales = b + 4;
    const uint8_t *q = b + 16;
    for (int j = 0; j < 8; j += 2) { /* 64 elements per step: 32 low nibbles, 32 high nibbles */
        int sc, mn;
        spk_q4k_scale_min(j, scales, &sc, &mn);
        const float d1 = d * (float)sc, m1 = dmin * (float)mn;
        spk_q4k_scale_min(j + 1, scales, &sc, &mn);
        const float d2 = d * (float)sc, m2 = dmin * (float)mn;
        for (int l = 0; l < 32; l++) {
            const float p = d1 * (float)(q[l] & 0x0F);
            y[l] = p - m1;
        }
        for (int l = 0; l < 32; l++) {
            const float p = d2 * (float)(q[l] >> 4);
            y[32 + l] = p - m2;
        }
        y += 64;
        q += 32;
    }
}

static void deq_q6_K(const uint8_t *b, float *y) {
    const uint8_t *ql = b;
    const uint8_t *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = spk_f16_to_f32(spk_rd16(b + 208));
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = (int)((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = (int)((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = (d * (float)sc[is + 0]) * (float)q1;
            y[l + 32] = (d * (float)sc[is + 2]) * (float)q2;
            y[l + 64] = (d * (float)sc[is + 4]) * (float)q3;
            y[l + 96] = (d * (float)sc[is + 6]) * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

void spk_ref_dequant(int type, const uint8_t *row, int64_t k0, int64_t n, float *y) {
    switch (type) {
    case SPK_TYPE_F32: memcpy(y, row + k0 * 4, (size_t)n * 4); break;
    case SPK_TYPE_F16:
        for (int64_t i = 0; i < n; i++) y[i] = spk_f16_to_f32(spk_rd16(row + (k0 + i) * 2));
        break;
    case SPK_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) y[i] = spk_bf16_to_f32(spk_rd16(row + (k0 + i) * 2));
        break;
    case SPK_TYPE_Q4_0:
        for (int64_t i = 0; i < n; i += 32) deq_q4_0(row + (k0 + i) / 32 * SPK_Q4_0_BYTES, y + i);
        break;
    case SPK_TYPE_Q4_1:
        for (int64_t i = 0; i < n; i += 32) deq_q4_1(row + (k0 + i) / 32 * SPK_Q4_1_BYTES, y + i);
        break;
    case SPK_TYPE_Q8_0:
        for (int64_t i = 0; i < n; i += 32) deq_q8_0(row + (k0 + i) / 32 * SPK_Q8_0_BYTES, y + i);
        break;
    case SPK_TYPE_Q4_K:
        for (int64_t i = 0; i < n; i += 256) deq_q4_K(row + (k0 + i) / 256 * SPK_Q4_K_BYTES, y + i);
        break;
    case SPK_TYPE_Q6_K:
        for (int64_t i = 0; i < n; i += 256) deq_q6_K(row + (k0 + i) / 256 * SPK_Q6_K_BYTES, y + i);
        break;
    default: memset(y, 0, (size_t)n * 4); break;
    }
}

/* ---- Exact matmuls -------------------------------------------------------------------------------- */

int spk_ref_matmul_f32(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K, const float *X,
                       int M, int ldx, float *Y, int ldy) {
    float *w = spk_alloc((size_t)K * sizeof(float));
    if (!w) return SPK_ENOMEM;
    for (int n = n0; n < n1; n++) {
        spk_ref_dequant(type, W + (size_t)n * row_bytes, 0, K, w);
        for (int m = 0; m < M; m++) {
            const float *x = X + (size_t)m * ldx;
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc = fmaf(x[k], w[k], acc);
            Y[(size_t)m * ldy + n] = acc;
        }
    }
    free(w);
    return SPK_OK;
}

int spk_ref_matmul_t_f32(int type, const uint8_t *W, size_t row_bytes, int N, int K, const float *dY, int M,
                         int ldy, float *dX, int ldx, int k0, int k1) {
    (void)K;
    const int kw = k1 - k0;
    if (kw <= 0 || N == 0 || M == 0) return SPK_OK;
    float *w = spk_alloc((size_t)N * kw * sizeof(float));
    if (!w) return SPK_ENOMEM;
    for (int n = 0; n < N; n++) spk_ref_dequant(type, W + (size_t)n * row_bytes, k0, kw, w + (size_t)n * kw);
    for (int m = 0; m < M; m++) {
        const float *dy = dY + (size_t)m * ldy;
        float *dx = dX + (size_t)m * ldx;
        for (int k = 0; k < kw; k++) {
            float acc = dx[k0 + k];
            for (int n = 0; n < N; n++) acc = fmaf(dy[n], w[(size_t)n * kw + k], acc);
            dx[k0 + k] = acc;
        }
    }
    free(w);
    return SPK_OK;
}

/* ---- Int8 path ------------------------------------------------------------------------------------ */

void spk_act_terms(int type, const uint8_t *row, int K, int u8_q8, int32_t *init, float *dx, float *cx) {
    const int sb = spk_q8_subblock(type);
    const int nsb = K / sb;
    for (int j = 0; j < nsb; j++) {
        const int8_t *qs = spk_act_qs(type, row, j);
        int sx = 0;
        float d;
        if (spk_is_kquant(type)) {
            const uint8_t *blk = row + (size_t)(j * sb / 256) * SPK_Q8_K_BYTES;
            d = spk_rdf32(blk);
            const int i16 = (j * sb % 256) / 16; /* first 16-sum of the sub-block */
            sx = spk_rdi16(blk + 260 + 2 * i16);
            if (sb == 32) sx += spk_rdi16(blk + 260 + 2 * (i16 + 1));
        } else {
            d = spk_f16_to_f32(spk_rd16(row + (size_t)j * SPK_Q8_0_BYTES));
            for (int l = 0; l < 32; l++) sx += qs[l];
        }
        dx[j] = d;
        cx[j] = 0.0f;
        init[j] = 0;
        switch (type) {
        case SPK_TYPE_Q4_0: init[j] = -8 * sx; break;
        case SPK_TYPE_Q8_0: init[j] = u8_q8 ? -128 * sx : 0; break;
        case SPK_TYPE_Q4_1: cx[j] = d * (float)sx; break;
        case SPK_TYPE_Q4_K: cx[j] = -(d * (float)sx); break;
        case SPK_TYPE_Q6_K: init[j] = -32 * sx; break;
        default: break;
        }
    }
}

/* One weight row times one quantized activation row, following the contract in ckernels.h. */
static float dot_q8_row(int type, const uint8_t *w, const uint8_t *xrow, int K) {
    float acc = 0.0f;
    switch (type) {
    case SPK_TYPE_Q4_0:
    case SPK_TYPE_Q4_1:
    case SPK_TYPE_Q8_0:
        for (int b = 0; b < K / 32; b++) {
            const uint8_t *xb = xrow + (size_t)b * SPK_Q8_0_BYTES;
            const float dx = spk_f16_to_f32(spk_rd16(xb));
            const int8_t *xq = (const int8_t *)(xb + 2);
            int isum = 0, sx = 0;
            for (int l = 0; l < 32; l++) sx += xq[l];
            if (type == SPK_TYPE_Q8_0) {
                const uint8_t *wb = w + (size_t)b * SPK_Q8_0_BYTES;
                const int8_t *wq = (const int8_t *)(wb + 2);
                for (int l = 0; l < 32; l++) isum += wq[l] * xq[l];
                const float dw = spk_f16_to_f32(spk_rd16(wb));
                acc = fmaf((float)isum, dw * dx, acc);
            } else {
                const size_t bytes = type == SPK_TYPE_Q4_0 ? SPK_Q4_0_BYTES : SPK_Q4_1_BYTES;
                const uint8_t *wb = w + (size_t)b * bytes;
                const uint8_t *qs = wb + (type == SPK_TYPE_Q4_0 ? 2 : 4);
                const int off = type == SPK_TYPE_Q4_0 ? 8 : 0;
                for (int l = 0; l < 16; l++) {
                    isum += ((qs[l] & 0x0F) - off) * xq[l];
                    isum += ((qs[l] >> 4) - off) * xq[l + 16];
                }
                const float dw = spk_f16_to_f32(spk_rd16(wb));
                acc = fmaf((float)isum, dw * dx, acc);
                if (type == SPK_TYPE_Q4_1) {
                    const float m = spk_f16_to_f32(spk_rd16(wb + 2));
                    acc = fmaf(m, dx * (float)sx, acc);
                }
            }
        }
        break;
    case SPK_TYPE_Q4_K:
        for (int s = 0; s < K / 256; s++) {
            const uint8_t *wb = w + (size_t)s * SPK_Q4_K_BYTES;
            const uint8_t *xb = xrow + (size_t)s * SPK_Q8_K_BYTES;
            const float d = spk_f16_to_f32(spk_rd16(wb));
            const float dmin = spk_f16_to_f32(spk_rd16(wb + 2));
            const float dx = spk_rdf32(xb);
            const int8_t *xq = (const int8_t *)(xb + 4);
            for (int j = 0; j < 8; j++) {
                int sc, mn;
                spk_q4k_scale_min(j, wb + 4, &sc, &mn);
                const uint8_t *q = wb + 16 + (j / 2) * 32; /* sub-blocks 2i, 2i+1 share 32 bytes */
                const int shift = (j & 1) * 4;
                int isum = 0;
                for (int l = 0; l < 32; l++) isum += ((q[l] >> shift) & 0x0F) * xq[j * 32 + l];
                const int sx = spk_rdi16(xb + 260 + 4 * j) + spk_rdi16(xb + 262 + 4 * j);
                acc = fmaf((float)isum, (d * (float)sc) * dx, acc);
                acc = fmaf(dmin * (float)mn, -(dx * (float)sx), acc);
            }
        }
        break;
    case SPK_TYPE_Q6_K:
        for (int s = 0; s < K / 256; s++) {
            const uint8_t *wb = w + (size_t)s * SPK_Q6_K_BYTES;
            const uint8_t *xb = xrow + (size_t)s * SPK_Q8_K_BYTES;
            const float d = spk_f16_to_f32(spk_rd16(wb + 208));
            const int8_t *sc = (const int8_t *)(wb + 192);
            const float dx = spk_rdf32(xb);
            const int8_t *xq = (const int8_t *)(xb + 4);
            for (int j = 0; j < 16; j++) { /* sub-block j covers elements 16j .. 16j+15 */
                int isum = 0;
                for (int l = 0; l < 16; l++) {
                    const int e = j * 16 + l;      /* element within the super-block */
                    const int h = e / 128, r = e % 128; /* half, then position in the half */
                    const int quarter = r / 32, p = r % 32;
                    const uint8_t lq = wb[h * 64 + (quarter & 1) * 32 + p];
                    const uint8_t hq = wb[128 + h * 32 + p];
                    const int lo = (quarter < 2) ? (lq & 0x0F) : (lq >> 4);
                    const int hi = (hq >> (2 * quarter)) & 3;
                    isum += ((lo | (hi << 4)) - 32) * xq[e];
                }
                acc = fmaf((float)isum, (d * (float)sc[j]) * dx, acc);
            }
        }
        break;
    default: break;
    }
    return acc;
}

int spk_ref_matmul_q8(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K, const uint8_t *Xq,
                      size_t xq_row_bytes, int M, float *Y, int ldy) {
    for (int m = 0; m < M; m++) {
        const uint8_t *xrow = Xq + (size_t)m * xq_row_bytes;
        for (int n = n0; n < n1; n++) Y[(size_t)m * ldy + n] = dot_q8_row(type, W + (size_t)n * row_bytes, xrow, K);
    }
    return SPK_OK;
}
