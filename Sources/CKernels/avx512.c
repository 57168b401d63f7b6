/*
 * avx512.c — the AVX-512 level (F + BW + VL + VNNI). Every function carries its own target attribute;
 * nothing here runs unless api.c found the features (cpuid + xgetbv).
 *
 * Exact path: panels of 32 weight rows × 256 columns are dequantized (bit-exact), transposed to
 * [k][32] and multiplied by a 12×32 register-blocked micro-kernel that broadcasts X[m,k] and runs one
 * fma chain per output in k order — the same chain as the scalar reference, so results are identical.
 * Int8 path: 16-row groups packed by sub-block (pack.h) and a micro-kernel of up to 8 rows that runs
 * vpdpbusd on broadcast activation dwords, then the contract's float steps per sub-block.
 */
#include "pack.h"

#if SPK_X86
#include <immintrin.h>

#pragma STDC FP_CONTRACT OFF

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline))

/* ---- Dequantization of a row chunk (bit-identical to spk_ref_dequant) ------------------------------ */

T512 INL __m512 cvt_u8x16(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q)); }

T512 INL void deq_chunk_inl(int type, const uint8_t *row, int k0, int kc, float *y) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    switch (type) {
    case SPK_TYPE_Q4_0:
        for (int i = 0; i < kc; i += 32) {
            const uint8_t *b = row + (size_t)(k0 + i) / 32 * SPK_Q4_0_BYTES;
            const __m512 d = _mm512_set1_ps(_cvtsh_ss(spk_rd16(b)));
            const __m128i q = _mm_loadu_si128((const __m128i *)(b + 2));
            const __m512i eight = _mm512_set1_epi32(8);
            const __m512 lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(q, m4)), eight));
            const __m512 hi = _mm512_cvtepi32_ps(
                _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), m4)), eight));
            _mm512_storeu_ps(y + i, _mm512_mul_ps(lo, d));
            _mm512_storeu_ps(y + i + 16, _mm512_mul_ps(hi, d));
        }
        break;
    case SPK_TYPE_Q4_1:
        for (int i = 0; i < kc; i += 32) {
            const uint8_t *b = row + (size_t)(k0 + i) / 32 * SPK_Q4_1_BYTES;
            const __m512 d = _mm512_set1_ps(_cvtsh_ss(spk_rd16(b)));
            const __m512 m = _mm512_set1_ps(_cvtsh_ss(spk_rd16(b + 2)));
            const __m128i q = _mm_loadu_si128((const __m128i *)(b + 4));
            const __m512 lo = cvt_u8x16(_mm_and_si128(q, m4));
            const __m512 hi = cvt_u8x16(_mm_and_si128(_mm_srli_epi16(q, 4), m4));
            _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_mul_ps(lo, d), m));
            _mm512_storeu_ps(y + i + 16, _mm512_add_ps(_mm512_mul_ps(hi, d), m));
        }
        break;
    case SPK_TYPE_Q8_0:
        for (int i = 0; i < kc; i += 32) {
            const uint8_t *b = row + (size_t)(k0 + i) / 32 * SPK_Q8_0_BYTES;
            const __m512 d = _mm512_set1_ps(_cvtsh_ss(spk_rd16(b)));
            const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2))));
            const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18))));
            _mm512_storeu_ps(y + i, _mm512_mul_ps(lo, d));
            _mm512_storeu_ps(y + i + 16, _mm512_mul_ps(hi, d));
        }
        break;
    case SPK_TYPE_Q4_K:
        for (int i = 0; i < kc; i += 256) {
            const uint8_t *b = row + (size_t)(k0 + i) / 256 * SPK_Q4_K_BYTES;
            const float d = _cvtsh_ss(spk_rd16(b)), dmin = _cvtsh_ss(spk_rd16(b + 2));
            for (int j = 0; j < 8; j++) {
                int sc, mn;
                spk_q4k_scale_min(j, b + 4, &sc, &mn);
                const __m512 ds = _mm512_set1_ps(d * (float)sc), mm = _mm512_set1_ps(dmin * (float)mn);
                const uint8_t *qs = b + 16 + (j >> 1) * 32;
                for (int h = 0; h < 2; h++) {
                    __m128i q = _mm_loadu_si128((const __m128i *)(qs + 16 * h));
                    if (j & 1) q = _mm_srli_epi16(q, 4);
                    const __m512 v = cvt_u8x16(_mm_and_si128(q, m4));
                    _mm512_storeu_ps(y + i + 32 * j + 16 * h, _mm512_sub_ps(_mm512_mul_ps(ds, v), mm));
                }
            }
        }
        break;
    case SPK_TYPE_Q6_K:
        for (int i = 0; i < kc; i += 256) {
            const uint8_t *b = row + (size_t)(k0 + i) / 256 * SPK_Q6_K_BYTES;
            const float d = _cvtsh_ss(spk_rd16(b + 208));
            const int8_t *sc = (const int8_t *)(b + 192);
            const __m128i m3 = _mm_set1_epi8(3);
            const __m512i off = _mm512_set1_epi32(32);
            for (int h = 0; h < 2; h++) { /* halves of 128: ql[64], qh[32], 8 scales each */
                const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
                for (int l = 0; l < 32; l += 16) {
                    const __m128i a = _mm_loadu_si128((const __m128i *)(ql + l));
                    const __m128i c = _mm_loadu_si128((const __m128i *)(ql + l + 32));
                    const __m128i hb = _mm_loadu_si128((const __m128i *)(qh + l));
                    const __m128i q[4] = {
                        _mm_or_si128(_mm_and_si128(a, m4), _mm_slli_epi16(_mm_and_si128(hb, m3), 4)),
                        _mm_or_si128(_mm_and_si128(c, m4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hb, 2), m3), 4)),
                        _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), m4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hb, 4), m3), 4)),
                        _mm_or_si128(_mm_and_si128(_mm_srli_epi16(c, 4), m4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hb, 6), m3), 4)),
                    };
                    SPK_UNROLL
                    for (int g = 0; g < 4; g++) {
                        const __m512 ds = _mm512_set1_ps(d * (float)sc[8 * h + l / 16 + 2 * g]);
                        const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(q[g]), off));
                        _mm512_storeu_ps(y + i + 128 * h + 32 * g + l, _mm512_mul_ps(ds, v));
                    }
                }
            }
        }
        break;
    case SPK_TYPE_F16:
        for (int i = 0; i < kc; i += 16)
            _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + (size_t)(k0 + i) * 2))));
        break;
    case SPK_TYPE_BF16:
        for (int i = 0; i < kc; i += 16) {
            const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + (size_t)(k0 + i) * 2)));
            _mm512_storeu_ps(y + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
        }
        break;
    default: spk_ref_dequant(type, row, k0, kc, y); break;
    }
}

T512 static void deq_chunk(int type, const uint8_t *row, int k0, int kc, float *y) { deq_chunk_inl(type, row, k0, kc, y); }

/* Columns [k0, k0+kc) of weight rows [n, n+nr) into y (row r at y + r*ys). The type switch is taken once,
   outside the row loop, so the 32-block cases inline (a panel of one 32-column block per row spent a
   large share of the transposed matmul in per-row call overhead). */
T512 static void deq_rows(int type, const uint8_t *W, size_t row_bytes, int n, int nr, int k0, int kc, float *y,
                          size_t ys) {
    switch (type) {
#define D_(T) case T: for (int r = 0; r < nr; r++) deq_chunk_inl(T, W + (size_t)(n + r) * row_bytes, k0, kc, y + (size_t)r * ys); break;
        D_(SPK_TYPE_Q4_0) D_(SPK_TYPE_Q4_1) D_(SPK_TYPE_Q8_0)
#undef D_
    default:
        for (int r = 0; r < nr; r++) deq_chunk(type, W + (size_t)(n + r) * row_bytes, k0, kc, y + (size_t)r * ys);
        break;
    }
}

/* ---- 16×16 float transpose ------------------------------------------------------------------------ */

T512 INL void tr16(__m512 r[16]) {
    __m512 t[16];
    SPK_UNROLL
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    SPK_UNROLL
    for (int i = 0; i < 4; i++) { /* r[4i+j] lane L = column 4L+j of rows 4i..4i+3 */
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
        t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xDD);
    }
}

/* In-lane 4×4 dword transpose of 16 rows × 16 bytes at rows[r] + off: T[t] lane r = dword t of row r. */
T512 INL void tr16x16b(const uint8_t *const rows[16], size_t off, __m512i T[4]) {
    __m512i R[4];
    SPK_UNROLL
    for (int e = 0; e < 4; e++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rows[e] + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rows[4 + e] + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rows[8 + e] + off)), 2);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rows[12 + e] + off)), 3);
        R[e] = v;
    }
    const __m512i t0 = _mm512_unpacklo_epi32(R[0], R[1]), t1 = _mm512_unpackhi_epi32(R[0], R[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(R[2], R[3]), t3 = _mm512_unpackhi_epi32(R[2], R[3]);
    T[0] = _mm512_unpacklo_epi64(t0, t2);
    T[1] = _mm512_unpackhi_epi64(t0, t2);
    T[2] = _mm512_unpacklo_epi64(t1, t3);
    T[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* ---- Exact path: Y = X · Wᵀ ----------------------------------------------------------------------- */

#define NR 32
#define MR 12
#define KC 256

/* Dequantizes rows [n, n+nr) × columns [k0, k0+kc) and stores them transposed: pack[k][32]. */
T512 static void pack_panel(int type, const uint8_t *W, size_t row_bytes, int n, int nr, int k0, int kc, float *tmp,
                            float *pack) {
    deq_rows(type, W, row_bytes, n, nr, k0, kc, tmp, (size_t)kc);
    for (int r = nr; r < NR; r++) memset(tmp + (size_t)r * kc, 0, (size_t)kc * sizeof(float));
    SPK_UNROLL
    for (int g = 0; g < NR / 16; g++) {
        for (int kk = 0; kk < kc; kk += 16) {
            __m512 v[16];
            SPK_UNROLL
            for (int i = 0; i < 16; i++) v[i] = _mm512_loadu_ps(tmp + (size_t)(g * 16 + i) * kc + kk);
            tr16(v);
            SPK_UNROLL
            for (int i = 0; i < 16; i++) _mm512_store_ps(pack + (size_t)(kk + i) * NR + g * 16, v[i]);
        }
    }
}

T512 INL void mk_f32(const int mr, const int kc, const float *x, const size_t ldx, const float *p, float *y,
                     const size_t ldy, const int first, const __mmask16 k0m, const __mmask16 k1m) {
    __m512 c0[MR], c1[MR];
    SPK_UNROLL
    for (int i = 0; i < mr; i++) {
        if (first) {
            c0[i] = _mm512_setzero_ps();
            c1[i] = _mm512_setzero_ps();
        } else {
            c0[i] = _mm512_maskz_loadu_ps(k0m, y + i * ldy);
            c1[i] = _mm512_maskz_loadu_ps(k1m, y + i * ldy + 16);
        }
    }
    for (int k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(p + (size_t)k * NR), b1 = _mm512_load_ps(p + (size_t)k * NR + 16);
        SPK_UNROLL
        for (int i = 0; i < mr; i++) {
            const __m512 a = _mm512_set1_ps(x[i * ldx + k]);
            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
        }
    }
    SPK_UNROLL
    for (int i = 0; i < mr; i++) {
        _mm512_mask_storeu_ps(y + i * ldy, k0m, c0[i]);
        _mm512_mask_storeu_ps(y + i * ldy + 16, k1m, c1[i]);
    }
}

T512 static void mk_f32_any(int mr, int kc, const float *x, size_t ldx, const float *p, float *y, size_t ldy,
                            int first, __mmask16 a, __mmask16 b) {
    switch (mr) {
#define C_(R) case R: mk_f32(R, kc, x, ldx, p, y, ldy, first, a, b); break;
        C_(1) C_(2) C_(3) C_(4) C_(5) C_(6) C_(7) C_(8) C_(9) C_(10) C_(11) C_(12)
#undef C_
    default: break;
    }
}

/*
 * Exact path for few X rows (M < 8) and 32-blocks: the quant bytes of 16 weight rows are transposed
 * (4×4 dword transposes) and dequantized one column k at a time into a vector of 16 rows, with per-row
 * scale vectors; every X row then does one fma per column. Same per-output chain (k in order from 0) as
 * the panel path, about half the work, and no panel round trip through memory.
 */
#define MR_SMALL 7
T512 INL void mk_small(const int type, const int mr, const uint8_t *const rows[16], const int nblocks, const float *x,
                       const size_t ldx, float *y, const size_t ldy, const __mmask16 msk) {
    const size_t bb = type == SPK_TYPE_Q4_0 ? SPK_Q4_0_BYTES : type == SPK_TYPE_Q4_1 ? SPK_Q4_1_BYTES : SPK_Q8_0_BYTES;
    const int qoff = type == SPK_TYPE_Q4_1 ? 4 : 2;
    const __m512i m4 = _mm512_set1_epi32(0x0F), eight = _mm512_set1_epi32(8);
    __m512 acc[MR_SMALL];
    SPK_UNROLL
    for (int i = 0; i < mr; i++) acc[i] = _mm512_setzero_ps();
    for (int b = 0; b < nblocks; b++) {
        const size_t off = (size_t)b * bb;
        uint32_t dm[16];
        for (int r = 0; r < 16; r++) memcpy(&dm[r], rows[r] + off, 4);
        const __m512i dmv = _mm512_loadu_si512(dm);
        const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dmv));
        const __m512 mn = type == SPK_TYPE_Q4_1 ? _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dmv, 16)))
                                                : _mm512_setzero_ps();
        const float *xb = x + (size_t)b * 32;
        const int halves = type == SPK_TYPE_Q8_0 ? 2 : 1;
        for (int h = 0; h < halves; h++) {
            __m512i T[4];
            tr16x16b(rows, off + qoff + 16 * h, T);
            const int nibs = type == SPK_TYPE_Q8_0 ? 1 : 2;
            for (int nib = 0; nib < nibs; nib++) {
                SPK_UNROLL
                for (int t = 0; t < 4; t++) {
                    SPK_UNROLL
                    for (int c = 0; c < 4; c++) {
                        const int k = 16 * (h + nib) + 4 * t + c;
                        __m512 w;
                        if (type == SPK_TYPE_Q8_0) {
                            const __m512i q = _mm512_srai_epi32(_mm512_slli_epi32(T[t], 24 - 8 * c), 24);
                            w = _mm512_mul_ps(_mm512_cvtepi32_ps(q), d);
                        } else {
                            const __m512i q = _mm512_and_si512(_mm512_srli_epi32(T[t], 8 * c + 4 * nib), m4);
                            if (type == SPK_TYPE_Q4_0) w = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, eight)), d);
                            else w = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(q), d), mn);
                        }
                        SPK_UNROLL
                        for (int i = 0; i < mr; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(xb[i * ldx + k]), w, acc[i]);
                    }
                }
            }
        }
    }
    SPK_UNROLL
    for (int i = 0; i < mr; i++) _mm512_mask_storeu_ps(y + i * ldy, msk, acc[i]);
}

T512 static void matmul_f32_small(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K, const float *X,
                                  int M, int ldx, float *Y, int ldy) {
    for (int n = n0; n < n1; n += 16) {
        const int nr = SPK_MIN(16, n1 - n);
        const __mmask16 msk = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
        const uint8_t *rows[16];
        for (int r = 0; r < 16; r++) rows[r] = W + (size_t)(n + (r < nr ? r : 0)) * row_bytes; /* masked lanes reread row 0 */
        for (int m = 0; m < M; m += MR_SMALL) {
            const int mr = SPK_MIN(MR_SMALL, M - m);
            const float *x = X + (size_t)m * ldx;
            float *y = Y + (size_t)m * ldy + n;
            switch (type * 8 + mr) {
#define S_(T, R) case T * 8 + R: mk_small(T, R, rows, K / 32, x, (size_t)ldx, y, (size_t)ldy, msk); break;
#define S7(T) S_(T, 1) S_(T, 2) S_(T, 3) S_(T, 4) S_(T, 5) S_(T, 6) S_(T, 7)
                S7(SPK_TYPE_Q4_0) S7(SPK_TYPE_Q4_1) S7(SPK_TYPE_Q8_0)
#undef S7
#undef S_
            default: break;
            }
        }
    }
}

T512 static void matmul_f32_small_packed(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K,
                                         const float *X, int M, int ldx, float *Y, int ldy);

T512 static int matmul_f32(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K, const float *X,
                           int M, int ldx, float *Y, int ldy) {
    if (M < 8 && (type == SPK_TYPE_Q4_0 || type == SPK_TYPE_Q4_1 || type == SPK_TYPE_Q8_0)) {
        matmul_f32_small(type, W, row_bytes, n0, n1, K, X, M, ldx, Y, ldy);
        return SPK_OK;
    }
    if (M < 8 && spk_is_kquant(type)) {
        matmul_f32_small_packed(type, W, row_bytes, n0, n1, K, X, M, ldx, Y, ldy);
        return SPK_OK;
    }
    float *tmp = spk_alloc((size_t)NR * KC * sizeof(float));
    float *pack = spk_alloc((size_t)NR * KC * sizeof(float));
    if (!tmp || !pack) {
        free(tmp);
        free(pack);
        return SPK_ENOMEM;
    }
    for (int n = n0; n < n1; n += NR) {
        const int nr = SPK_MIN(NR, n1 - n);
        const __mmask16 ma = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
        const __mmask16 mb = (__mmask16)(nr >= 32 ? 0xFFFF : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
        for (int k0 = 0; k0 < K; k0 += KC) {
            const int kc = SPK_MIN(KC, K - k0);
            pack_panel(type, W, row_bytes, n, nr, k0, kc, tmp, pack);
            for (int m = 0; m < M; m += MR) {
                mk_f32_any(SPK_MIN(MR, M - m), kc, X + (size_t)m * ldx + k0, (size_t)ldx, pack,
                           Y + (size_t)m * ldy + n, (size_t)ldy, k0 == 0, ma, mb);
            }
        }
    }
    free(tmp);
    free(pack);
    return SPK_OK;
}

/* ---- Exact path, transposed: dX += dY · W --------------------------------------------------------- */

T512 INL void mk_t(const int mr, const int nc, const float *dy, const size_t ldy, const float *p, const size_t ps,
                   float *dx, const size_t ldx) {
    __m512 c0[MR], c1[MR];
    SPK_UNROLL
    for (int i = 0; i < mr; i++) {
        c0[i] = _mm512_loadu_ps(dx + i * ldx);
        c1[i] = _mm512_loadu_ps(dx + i * ldx + 16);
    }
    for (int n = 0; n < nc; n++) {
        const __m512 b0 = _mm512_load_ps(p + (size_t)n * ps), b1 = _mm512_load_ps(p + (size_t)n * ps + 16);
        SPK_UNROLL
        for (int i = 0; i < mr; i++) {
            const __m512 a = _mm512_set1_ps(dy[i * ldy + n]);
            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
        }
    }
    SPK_UNROLL
    for (int i = 0; i < mr; i++) {
        _mm512_storeu_ps(dx + i * ldx, c0[i]);
        _mm512_storeu_ps(dx + i * ldx + 16, c1[i]);
    }
}

T512 static void mk_t_any(int mr, int nc, const float *dy, size_t ldy, const float *p, size_t ps, float *dx,
                          size_t ldx) {
    switch (mr) {
#define C_(R) case R: mk_t(R, nc, dy, ldy, p, ps, dx, ldx); break;
        C_(1) C_(2) C_(3) C_(4) C_(5) C_(6) C_(7) C_(8) C_(9) C_(10) C_(11) C_(12)
#undef C_
    default: break;
    }
}

T512 static int matmul_t_f32(int type, const uint8_t *W, size_t row_bytes, int N, int K, const float *dY, int M,
                             int ldy, float *dX, int ldx, int k0, int k1) {
    (void)K;
    /* Panels of nc_max rows × pw columns (32 KB): four 32-blocks per row, so each row's quants are read
       contiguously. Rows outer, columns inner: a panel's weight rows are read from memory once, and every
       dX element still takes the rows n in increasing order (the result contract). */
    const int pw = spk_is_kquant(type) ? 256 : 128;
    const int nc_max = 8192 / pw;
    float *pack = spk_alloc((size_t)nc_max * pw * sizeof(float));
    if (!pack) return SPK_ENOMEM;
    for (int n = 0; n < N; n += nc_max) {
        const int nc = SPK_MIN(nc_max, N - n);
        for (int kb = k0; kb < k1; kb += pw) {
            const int kw = SPK_MIN(pw, k1 - kb);
            deq_rows(type, W, row_bytes, n, nc, kb, kw, pack, (size_t)pw);
            for (int m = 0; m < M; m += MR) {
                const int mr = SPK_MIN(MR, M - m);
                for (int s = 0; s < kw; s += 32)
                    mk_t_any(mr, nc, dY + (size_t)m * ldy + n, (size_t)ldy, pack + s, (size_t)pw,
                             dX + (size_t)m * ldx + kb + s, (size_t)ldx);
            }
        }
    }
    free(pack);
    return SPK_OK;
}

/* ---- Int8 path ------------------------------------------------------------------------------------ */

#define MRQ 8
#define KCQ 512

/* 16 lanes of one little-endian dword per row at rows[r] + off. */
T512 INL __m512i gather_dw(const uint8_t *const rows[16], size_t off) {
    uint32_t v[16];
    for (int r = 0; r < 16; r++) memcpy(&v[r], rows[r] + off, 4);
    return _mm512_loadu_si512(v);
}

/* Q4_K, one 16-row group; j0 and nsb are whole super-blocks (multiples of 8). */
T512 static void pack_q4k_group(const uint8_t *const rows[16], int j0, int nsb, uint8_t *out) {
    const size_t stride = 8 * 64 + 128;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m6 = _mm512_set1_epi32(63), lo4 = _mm512_set1_epi32(0x0F);
    for (int sb = j0 / 8; sb < (j0 + nsb) / 8; sb++) {
        const size_t off = (size_t)sb * SPK_Q4_K_BYTES;
        uint8_t *base = out + (size_t)(sb * 8 - j0) * stride;
        const __m512i dd = gather_dw(rows, off);
        const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        const __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        const __m512i s0 = gather_dw(rows, off + 4), s1 = gather_dw(rows, off + 8), s2 = gather_dw(rows, off + 12);
        SPK_UNROLL
        for (int j = 0; j < 8; j++) { /* spk_q4k_scale_min on 16 lanes */
            __m512i sc, mn;
            if (j < 4) {
                sc = _mm512_and_si512(_mm512_srli_epi32(s0, 8 * j), m6);
                mn = _mm512_and_si512(_mm512_srli_epi32(s1, 8 * j), m6);
            } else {
                const int jj = j - 4;
                const __m512i b8 = _mm512_srli_epi32(s2, 8 * jj);
                sc = _mm512_or_si512(_mm512_and_si512(b8, lo4),
                                     _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(s0, 8 * jj + 6), _mm512_set1_epi32(3)), 4));
                mn = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(b8, 4), lo4),
                                     _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(s1, 8 * jj + 6), _mm512_set1_epi32(3)), 4));
            }
            float *sw = (float *)(base + (size_t)j * stride + 512);
            _mm512_store_ps(sw, _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc)));
            _mm512_store_ps(sw + 16, _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(mn)));
        }
        for (int p = 0; p < 4; p++) { /* sub-blocks 2p (low nibbles) and 2p+1 (high) share 32 bytes */
            for (int h = 0; h < 2; h++) {
                __m512i T[4];
                tr16x16b(rows, off + 16 + 32 * p + 16 * h, T);
                SPK_UNROLL
                for (int t = 0; t < 4; t++) {
                    _mm512_store_si512(base + (size_t)(2 * p) * stride + (4 * h + t) * 64, _mm512_and_si512(T[t], m4));
                    _mm512_store_si512(base + (size_t)(2 * p + 1) * stride + (4 * h + t) * 64,
                                       _mm512_and_si512(_mm512_srli_epi16(T[t], 4), m4));
                }
            }
        }
    }
}

/* Q6_K, one 16-row group; j0 and nsb are whole super-blocks (multiples of 16 sub-blocks of 16). */
T512 static void pack_q6k_group(const uint8_t *const rows[16], int j0, int nsb, uint8_t *out) {
    const size_t stride = 4 * 64 + 128;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(3);
    for (int sb = j0 / 16; sb < (j0 + nsb) / 16; sb++) {
        const size_t off = (size_t)sb * SPK_Q6_K_BYTES;
        uint8_t *base = out + (size_t)(sb * 16 - j0) * stride;
        uint16_t dh[16];
        for (int r = 0; r < 16; r++) memcpy(&dh[r], rows[r] + off + 208, 2);
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh));
        __m512i S[4];
        tr16x16b(rows, off + 192, S); /* S[c] lane r = scales 4c..4c+3 of row r */
        SPK_UNROLL
        for (int i = 0; i < 16; i++) {
            const __m512i sc = _mm512_srai_epi32(_mm512_slli_epi32(S[i / 4], 24 - 8 * (i % 4)), 24);
            float *sw = (float *)(base + (size_t)i * stride + 256);
            _mm512_store_ps(sw, _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc)));
            _mm512_store_ps(sw + 16, _mm512_setzero_ps());
        }
        for (int h = 0; h < 2; h++) {
            for (int p0 = 0; p0 < 32; p0 += 16) {
                __m512i A[4], C[4], H[4];
                tr16x16b(rows, off + 64 * h + p0, A);
                tr16x16b(rows, off + 64 * h + 32 + p0, C);
                tr16x16b(rows, off + 128 + 32 * h + p0, H);
                const int i0 = 8 * h + p0 / 16;
                SPK_UNROLL
                for (int t = 0; t < 4; t++) {
                    const __m512i q0 = _mm512_or_si512(_mm512_and_si512(A[t], m4), _mm512_slli_epi16(_mm512_and_si512(H[t], m3), 4));
                    const __m512i q1 = _mm512_or_si512(_mm512_and_si512(C[t], m4),
                                                       _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(H[t], 2), m3), 4));
                    const __m512i q2 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(A[t], 4), m4),
                                                       _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(H[t], 4), m3), 4));
                    const __m512i q3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(C[t], 4), m4),
                                                       _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(H[t], 6), m3), 4));
                    _mm512_store_si512(base + (size_t)(i0 + 0) * stride + t * 64, q0);
                    _mm512_store_si512(base + (size_t)(i0 + 2) * stride + t * 64, q1);
                    _mm512_store_si512(base + (size_t)(i0 + 4) * stride + t * 64, q2);
                    _mm512_store_si512(base + (size_t)(i0 + 6) * stride + t * 64, q3);
                }
            }
        }
    }
}

/* Packs sub-blocks [j0, j0+nsb) of rows [n_first, n_first+nrows) (nrows ≤ 16) in the layout of pack.h. */
T512 static void pack_q8_group(int type, const uint8_t *W, size_t row_bytes, int n_first, int nrows, int j0, int nsb,
                               uint8_t *out) {
    /* Lanes past nrows re-read the last row: finite values whose results are never stored. */
    const uint8_t *rows[16];
    for (int r = 0; r < 16; r++) rows[r] = W + (size_t)(n_first + (r < nrows ? r : nrows - 1)) * row_bytes;
    if (type == SPK_TYPE_Q4_K) {
        pack_q4k_group(rows, j0, nsb, out);
        return;
    }
    if (type == SPK_TYPE_Q6_K) {
        pack_q6k_group(rows, j0, nsb, out);
        return;
    }
    const size_t stride = spk_pack_q8_stride(type, SPK_Q8_U8);
    const size_t bb = type == SPK_TYPE_Q4_0 ? SPK_Q4_0_BYTES : type == SPK_TYPE_Q4_1 ? SPK_Q4_1_BYTES : SPK_Q8_0_BYTES;
    const int qoff = type == SPK_TYPE_Q4_1 ? 4 : 2;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int jj = 0; jj < nsb; jj++) {
        const size_t off = (size_t)(j0 + jj) * bb;
        uint8_t *dst = out + (size_t)jj * stride;
        const int halves = type == SPK_TYPE_Q8_0 ? 2 : 1;
        SPK_UNROLL
        for (int h = 0; h < halves; h++) {
            /* reg e, 128-bit lane g <- 16 quant bytes of row 4g+e; an in-lane 4×4 dword transpose then
               gives T[t] with lane r = dword t of row r. */
            __m512i R[4];
            SPK_UNROLL
            for (int e = 0; e < 4; e++) {
                __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rows[e] + off + qoff + 16 * h)));
                v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rows[4 + e] + off + qoff + 16 * h)), 1);
                v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rows[8 + e] + off + qoff + 16 * h)), 2);
                v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(rows[12 + e] + off + qoff + 16 * h)), 3);
                R[e] = v;
            }
            const __m512i t0 = _mm512_unpacklo_epi32(R[0], R[1]), t1 = _mm512_unpackhi_epi32(R[0], R[1]);
            const __m512i t2 = _mm512_unpacklo_epi32(R[2], R[3]), t3 = _mm512_unpackhi_epi32(R[2], R[3]);
            __m512i T[4];
            T[0] = _mm512_unpacklo_epi64(t0, t2);
            T[1] = _mm512_unpackhi_epi64(t0, t2);
            T[2] = _mm512_unpacklo_epi64(t1, t3);
            T[3] = _mm512_unpackhi_epi64(t1, t3);
            if (type == SPK_TYPE_Q8_0) {
                const __m512i bias = _mm512_set1_epi8((char)0x80);
                SPK_UNROLL
                for (int t = 0; t < 4; t++) _mm512_store_si512(dst + (4 * h + t) * 64, _mm512_xor_si512(T[t], bias));
            } else {
                SPK_UNROLL
                for (int t = 0; t < 4; t++) {
                    _mm512_store_si512(dst + t * 64, _mm512_and_si512(T[t], m4));
                    _mm512_store_si512(dst + (4 + t) * 64, _mm512_and_si512(_mm512_srli_epi16(T[t], 4), m4));
                }
            }
        }
        uint32_t dm[16];
        for (int r = 0; r < 16; r++) memcpy(&dm[r], rows[r] + off, 4);
        const __m512i v = _mm512_loadu_si512(dm);
        float *sw = (float *)(dst + 32 * 16);
        _mm512_store_ps(sw, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)));
        _mm512_store_ps(sw + 16, type == SPK_TYPE_Q4_1 ? _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)))
                                                       : _mm512_setzero_ps());
    }
}

/* Activation-quant offset of sub-block j within a row (see spk_act_qs). */
INL size_t act_off(const int type, const int j) {
    switch (type) {
    case SPK_TYPE_Q4_K: return (size_t)(j >> 3) * SPK_Q8_K_BYTES + 4 + (j & 7) * 32;
    case SPK_TYPE_Q6_K: return (size_t)(j >> 4) * SPK_Q8_K_BYTES + 4 + (j & 15) * 16;
    default: return (size_t)j * SPK_Q8_0_BYTES + 2;
    }
}

T512 INL void mk_q8(const int type, const int mr, const uint8_t *pk, const int j0, const int nsb, const uint8_t *xq,
                    const size_t xq_rb, const int32_t *init, const float *dx, const float *cx, const size_t nsb_all,
                    float *y, const size_t ldy, const int first, const __mmask16 msk) {
    const int steps = type == SPK_TYPE_Q6_K ? 4 : 8;
    const int has_off = type == SPK_TYPE_Q4_1 || type == SPK_TYPE_Q4_K;
    const size_t stride = (size_t)steps * 64 + 128;
    __m512 c[MRQ];
    SPK_UNROLL
    for (int i = 0; i < mr; i++) c[i] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(msk, y + i * ldy);
    for (int jj = 0; jj < nsb; jj++) {
        const uint8_t *g = pk + (size_t)jj * stride;
        const int j = j0 + jj;
        __m512i w[8];
        SPK_UNROLL
        for (int t = 0; t < steps; t++) w[t] = _mm512_load_si512(g + 64 * t);
        const __m512 sw = _mm512_load_ps(g + 64 * steps);
        const __m512 ow = has_off ? _mm512_load_ps(g + 64 * steps + 64) : _mm512_setzero_ps();
        const size_t xo = act_off(type, j);
        SPK_UNROLL
        for (int i = 0; i < mr; i++) {
            const uint8_t *xr = xq + i * xq_rb + xo;
            /* Two dependency chains of 4 (or 2) dpbusd each: the 5-cycle latency would otherwise bound
               the loop. Integer sums are exact, so the split does not change the result. */
            __m512i s = _mm512_set1_epi32(init[i * nsb_all + j]), s2 = _mm512_setzero_si512();
            SPK_UNROLL
            for (int t = 0; t < steps; t += 2) {
                int32_t v0, v1;
                memcpy(&v0, xr + 4 * t, 4);
                memcpy(&v1, xr + 4 * t + 4, 4);
                s = _mm512_dpbusd_epi32(s, w[t], _mm512_set1_epi32(v0));
                s2 = _mm512_dpbusd_epi32(s2, w[t + 1], _mm512_set1_epi32(v1));
            }
            s = _mm512_add_epi32(s, s2);
            const __m512 scale = _mm512_mul_ps(sw, _mm512_set1_ps(dx[i * nsb_all + j]));
            c[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, c[i]);
            if (has_off) c[i] = _mm512_fmadd_ps(ow, _mm512_set1_ps(cx[i * nsb_all + j]), c[i]);
        }
    }
    SPK_UNROLL
    for (int i = 0; i < mr; i++) _mm512_mask_storeu_ps(y + i * ldy, msk, c[i]);
}

#define MKQ_CASES(TYPE)                                                                                        \
    switch (mr) {                                                                                              \
    case 1: mk_q8(TYPE, 1, pk, j0, nsb, xq, xq_rb, init, dx, cx, nsb_all, y, ldy, first, msk); break;          \
    case 2: mk_q8(TYPE, 2, pk, j0, nsb, xq, xq_rb, init, dx, cx, nsb_all, y, ldy, first, msk); break;          \
    case 3: mk_q8(TYPE, 3, pk, j0, nsb, xq, xq_rb, init, dx, cx, nsb_all, y, ldy, first, msk); break;          \
    case 4: mk_q8(TYPE, 4, pk, j0, nsb, xq, xq_rb, init, dx, cx, nsb_all, y, ldy, first, msk); break;          \
    case 5: mk_q8(TYPE, 5, pk, j0, nsb, xq, xq_rb, init, dx, cx, nsb_all, y, ldy, first, msk); break;          \
    case 6: mk_q8(TYPE, 6, pk, j0, nsb, xq, xq_rb, init, dx, cx, nsb_all, y, ldy, first, msk); break;          \
    case 7: mk_q8(TYPE, 7, pk, j0, nsb, xq, xq_rb, init, dx, cx, nsb_all, y, ldy, first, msk); break;          \
    default: mk_q8(TYPE, 8, pk, j0, nsb, xq, xq_rb, init, dx, cx, nsb_all, y, ldy, first, msk); break;         \
    }

T512 static void mk_q8_any(int type, int mr, const uint8_t *pk, int j0, int nsb, const uint8_t *xq, size_t xq_rb,
                           const int32_t *init, const float *dx, const float *cx, size_t nsb_all, float *y,
                           size_t ldy, int first, __mmask16 msk) {
    switch (type) {
    case SPK_TYPE_Q4_0: MKQ_CASES(SPK_TYPE_Q4_0) break;
    case SPK_TYPE_Q4_1: MKQ_CASES(SPK_TYPE_Q4_1) break;
    case SPK_TYPE_Q8_0: MKQ_CASES(SPK_TYPE_Q8_0) break;
    case SPK_TYPE_Q4_K: MKQ_CASES(SPK_TYPE_Q4_K) break;
    case SPK_TYPE_Q6_K: MKQ_CASES(SPK_TYPE_Q6_K) break;
    default: break;
    }
}

T512 static int matmul_q8(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K, const uint8_t *Xq,
                          size_t xq_rb, int M, float *Y, int ldy) {
    const int sb = spk_q8_subblock(type);
    const int nsb_all = K / sb;
    const int kcq = SPK_MIN(KCQ, K);
    const size_t stride = spk_pack_q8_stride(type, SPK_Q8_U8);
    int32_t *init = spk_alloc((size_t)M * nsb_all * sizeof(int32_t));
    float *dx = spk_alloc((size_t)M * nsb_all * sizeof(float));
    float *cx = spk_alloc((size_t)M * nsb_all * sizeof(float));
    uint8_t *pk = spk_alloc((size_t)(kcq / sb) * stride);
    if (!init || !dx || !cx || !pk) {
        free(init), free(dx), free(cx), free(pk);
        return SPK_ENOMEM;
    }
    for (int m = 0; m < M; m++)
        spk_act_terms(type, Xq + (size_t)m * xq_rb, K, 1, init + (size_t)m * nsb_all, dx + (size_t)m * nsb_all,
                      cx + (size_t)m * nsb_all);
    for (int n = n0; n < n1; n += 16) {
        const int nr = SPK_MIN(16, n1 - n);
        const __mmask16 msk = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
        for (int k0 = 0; k0 < K; k0 += kcq) {
            const int kc = SPK_MIN(kcq, K - k0);
            const int j0 = k0 / sb, nsb = kc / sb;
            pack_q8_group(type, W, row_bytes, n, nr, j0, nsb, pk);
            for (int m = 0; m < M; m += MRQ) {
                const size_t o = (size_t)m * nsb_all;
                mk_q8_any(type, SPK_MIN(MRQ, M - m), pk, j0, nsb, Xq + (size_t)m * xq_rb, xq_rb, init + o, dx + o,
                          cx + o, (size_t)nsb_all, Y + (size_t)m * ldy + n, (size_t)ldy, k0 == 0, msk);
            }
        }
    }
    free(init), free(dx), free(cx), free(pk);
    return SPK_OK;
}

/*
 * Exact path for few X rows on K-quants: the int8 packer's output (quants transposed to [step][row][4]
 * with per-row scale and offset vectors) is dequantized one column at a time, bit-identically to the
 * reference (Q4_K: (d·sc)·q − dmin·m; Q6_K: (d·sc)·(q − 32)), and fed to per-row fma chains in k order.
 */
T512 INL void mk_small_packed(const int type, const int mr, const uint8_t *pk, const int nsb, const float *x,
                              const size_t ldx, __m512 acc[MR_SMALL]) {
    const int sb = type == SPK_TYPE_Q6_K ? 16 : 32;
    const size_t stride = (size_t)sb * 16 + 128;
    const __m512i byte = _mm512_set1_epi32(0xFF), off32 = _mm512_set1_epi32(32);
    for (int jj = 0; jj < nsb; jj++) {
        const uint8_t *g = pk + (size_t)jj * stride;
        const __m512 sw = _mm512_load_ps(g + sb * 16), ow = _mm512_load_ps(g + sb * 16 + 64);
        for (int t = 0; t < sb / 4; t++) {
            const __m512i P = _mm512_load_si512(g + 64 * t);
            SPK_UNROLL
            for (int c = 0; c < 4; c++) {
                const __m512i q = _mm512_and_si512(_mm512_srli_epi32(P, 8 * c), byte);
                const __m512 w = type == SPK_TYPE_Q6_K ? _mm512_mul_ps(sw, _mm512_cvtepi32_ps(_mm512_sub_epi32(q, off32)))
                                                       : _mm512_sub_ps(_mm512_mul_ps(sw, _mm512_cvtepi32_ps(q)), ow);
                const int k = jj * sb + 4 * t + c;
                SPK_UNROLL
                for (int i = 0; i < mr; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(x[i * ldx + k]), w, acc[i]);
            }
        }
    }
}

T512 static void matmul_f32_small_packed(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K,
                                         const float *X, int M, int ldx, float *Y, int ldy) {
    const int sb = spk_q8_subblock(type);
    const int kcq = SPK_MIN(KCQ, K);
    uint8_t pk[(KCQ / 16) * (16 * 16 + 128)] __attribute__((aligned(64))); /* largest: Q6_K, 32 sub-blocks */
    for (int n = n0; n < n1; n += 16) {
        const int nr = SPK_MIN(16, n1 - n);
        const __mmask16 msk = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
        for (int m = 0; m < M; m += MR_SMALL) {
            const int mr = SPK_MIN(MR_SMALL, M - m);
            __m512 acc[MR_SMALL];
            for (int i = 0; i < MR_SMALL; i++) acc[i] = _mm512_setzero_ps();
            for (int k0 = 0; k0 < K; k0 += kcq) {
                const int kc = SPK_MIN(kcq, K - k0);
                pack_q8_group(type, W, row_bytes, n, nr, k0 / sb, kc / sb, pk);
                const float *x = X + (size_t)m * ldx + k0;
                switch (type * 8 + mr) {
#define S_(T, R) case T * 8 + R: mk_small_packed(T, R, pk, kc / sb, x, (size_t)ldx, acc); break;
#define S7(T) S_(T, 1) S_(T, 2) S_(T, 3) S_(T, 4) S_(T, 5) S_(T, 6) S_(T, 7)
                    S7(SPK_TYPE_Q4_K) S7(SPK_TYPE_Q6_K)
#undef S7
#undef S_
                default: break;
                }
            }
            for (int i = 0; i < mr; i++) _mm512_mask_storeu_ps(Y + (size_t)(m + i) * ldy + n, msk, acc[i]);
        }
    }
}

/* ---- Activation quantizers (bit-identical to the reference; rows holding NaN are unspecified) -------- */

/* C roundf on 16 lanes: truncate, then add one where the dropped fraction is at least one half. */
T512 INL __m512 roundf16(__m512 v) {
    const __m512 a = _mm512_abs_ps(v);
    const __m512 t = _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(a, t), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 r = _mm512_mask_add_ps(t, up, t, _mm512_set1_ps(1.0f));
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), sign));
}

T512 static void quantize_q8_0(const float *x, uint8_t *y, int k) {
    for (int i = 0; i < k / 32; i++, x += 32, y += SPK_Q8_0_BYTES) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = spk_f32_to_f16(d);
        memcpy(y, &dh, 2);
        const __m512 s = _mm512_set1_ps(id);
        const __m512i q0 = _mm512_cvtps_epi32(roundf16(_mm512_mul_ps(v0, s)));
        const __m512i q1 = _mm512_cvtps_epi32(roundf16(_mm512_mul_ps(v1, s)));
        _mm_storeu_si128((__m128i *)(y + 2), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(y + 18), _mm512_cvtepi32_epi8(q1));
    }
}

T512 static void quantize_q8_K(const float *x, uint8_t *y, int k) {
    for (int i = 0; i < k / 256; i++, x += 256, y += SPK_Q8_K_BYTES) {
        __m512 m = _mm512_setzero_ps();
        SPK_UNROLL
        for (int j = 0; j < 16; j++) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * j)));
        const float amax = _mm512_reduce_max_ps(m);
        if (amax == 0.0f) {
            memset(y, 0, SPK_Q8_K_BYTES);
            continue;
        }
        int first = 0;
        while (fabsf(x[first]) != amax) first++; /* the reference keeps the first largest magnitude */
        const float iscale = -127.0f / x[first];
        const __m512 s = _mm512_set1_ps(iscale);
        for (int j = 0; j < 16; j++) { /* cvtps rounds half to even, as ggml's nearest_int */
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(s, _mm512_loadu_ps(x + 16 * j)));
            q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(y + 4 + 16 * j), _mm512_cvtepi32_epi8(q));
            const int16_t sum = (int16_t)_mm512_reduce_add_epi32(q);
            memcpy(y + 260 + 2 * j, &sum, 2);
        }
        const float d = 1.0f / iscale;
        memcpy(y, &d, 4);
    }
}

const struct spk_kernels spk_kernels_avx512_table = {
    .isa = SPK_ISA_AVX512,
    .name = "avx512",
    .matmul_f32 = matmul_f32,
    .matmul_t_f32 = matmul_t_f32,
    .matmul_q8 = matmul_q8,
    .quantize_q8_0 = quantize_q8_0,
    .quantize_q8_K = quantize_q8_K,
};

#endif
