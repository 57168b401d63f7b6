/*
 * avx2.c — the AVX2 level (AVX2 + FMA + F16C), with an AVX-VNNI variant of the int8 kernel chosen at
 * run time. Same algorithms as avx512.c at half the width: exact path with 16-row panels and a 6×16
 * micro-kernel (bit-identical to the reference), int8 path on the shared packed layout.
 */
#include "pack.h"

#if SPK_X86
#include <immintrin.h>

#pragma STDC FP_CONTRACT OFF

#define T2 __attribute__((target("avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline))

/* ---- Dequantization of a row chunk (bit-identical to spk_ref_dequant) ------------------------------ */

T2 INL __m256 cvt_u8x8(__m128i q) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q)); }

T2 static void deq_chunk(int type, const uint8_t *row, int k0, int kc, float *y) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    switch (type) {
    case SPK_TYPE_Q4_0:
    case SPK_TYPE_Q4_1: {
        const int q1 = type == SPK_TYPE_Q4_1;
        const size_t bb = q1 ? SPK_Q4_1_BYTES : SPK_Q4_0_BYTES;
        const __m256 off8 = _mm256_set1_ps(8.0f);
        for (int i = 0; i < kc; i += 32) {
            const uint8_t *b = row + (size_t)(k0 + i) / 32 * bb;
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(spk_rd16(b)));
            const __m256 m = _mm256_set1_ps(q1 ? _cvtsh_ss(spk_rd16(b + 2)) : 0.0f);
            const __m128i q = _mm_loadu_si128((const __m128i *)(b + (q1 ? 4 : 2)));
            const __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
            __m256 v[4] = {cvt_u8x8(lo), cvt_u8x8(_mm_srli_si128(lo, 8)), cvt_u8x8(hi), cvt_u8x8(_mm_srli_si128(hi, 8))};
            SPK_UNROLL
            for (int h = 0; h < 4; h++) {
                /* q-8 is exact in float, so subtracting in float equals the integer subtraction */
                const __m256 r = q1 ? _mm256_add_ps(_mm256_mul_ps(v[h], d), m) : _mm256_mul_ps(_mm256_sub_ps(v[h], off8), d);
                _mm256_storeu_ps(y + i + 8 * h, r);
            }
        }
        break;
    }
    case SPK_TYPE_Q8_0:
        for (int i = 0; i < kc; i += 32) {
            const uint8_t *b = row + (size_t)(k0 + i) / 32 * SPK_Q8_0_BYTES;
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(spk_rd16(b)));
            SPK_UNROLL
            for (int h = 0; h < 4; h++) {
                const __m128i q = _mm_loadl_epi64((const __m128i *)(b + 2 + 8 * h));
                _mm256_storeu_ps(y + i + 8 * h, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
            }
        }
        break;
    case SPK_TYPE_Q4_K:
        for (int i = 0; i < kc; i += 256) {
            const uint8_t *b = row + (size_t)(k0 + i) / 256 * SPK_Q4_K_BYTES;
            const float d = _cvtsh_ss(spk_rd16(b)), dmin = _cvtsh_ss(spk_rd16(b + 2));
            for (int j = 0; j < 8; j++) {
                int sc, mn;
                spk_q4k_scale_min(j, b + 4, &sc, &mn);
                const __m256 ds = _mm256_set1_ps(d * (float)sc), mm = _mm256_set1_ps(dmin * (float)mn);
                const uint8_t *qs = b + 16 + (j >> 1) * 32;
                for (int h = 0; h < 2; h++) {
                    __m128i q = _mm_loadu_si128((const __m128i *)(qs + 16 * h));
                    if (j & 1) q = _mm_srli_epi16(q, 4);
                    q = _mm_and_si128(q, m4);
                    _mm256_storeu_ps(y + i + 32 * j + 16 * h, _mm256_sub_ps(_mm256_mul_ps(ds, cvt_u8x8(q)), mm));
                    _mm256_storeu_ps(y + i + 32 * j + 16 * h + 8, _mm256_sub_ps(_mm256_mul_ps(ds, cvt_u8x8(_mm_srli_si128(q, 8))), mm));
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
            const __m256 off = _mm256_set1_ps(32.0f);
            for (int h = 0; h < 2; h++) {
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
                        const __m256 ds = _mm256_set1_ps(d * (float)sc[8 * h + l / 16 + 2 * g]);
                        float *o = y + i + 128 * h + 32 * g + l;
                        /* q-32 is exact in float */
                        _mm256_storeu_ps(o, _mm256_mul_ps(ds, _mm256_sub_ps(cvt_u8x8(q[g]), off)));
                        _mm256_storeu_ps(o + 8, _mm256_mul_ps(ds, _mm256_sub_ps(cvt_u8x8(_mm_srli_si128(q[g], 8)), off)));
                    }
                }
            }
        }
        break;
    case SPK_TYPE_F16:
        for (int i = 0; i < kc; i += 8)
            _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + (size_t)(k0 + i) * 2))));
        break;
    case SPK_TYPE_BF16:
        for (int i = 0; i < kc; i += 8) {
            const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + (size_t)(k0 + i) * 2)));
            _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        }
        break;
    default: spk_ref_dequant(type, row, k0, kc, y); break;
    }
}

/* ---- 8×8 float transpose -------------------------------------------------------------------------- */

T2 INL void tr8(__m256 r[8]) {
    __m256 t[8];
    SPK_UNROLL
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        r[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) { /* r[j] lane L = column 4L+j of rows 0..3, r[4+j] of rows 4..7 */
        t[j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x20);
        t[4 + j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x31);
    }
    SPK_UNROLL
    for (int i = 0; i < 8; i++) r[i] = t[i];
}

/* ---- Exact path: Y = X · Wᵀ ----------------------------------------------------------------------- */

#define NR 16
#define MR 6
#define KC 256

T2 static void pack_panel(int type, const uint8_t *W, size_t row_bytes, int n, int nr, int k0, int kc, float *tmp,
                          float *pack) {
    for (int r = 0; r < NR; r++) {
        if (r < nr) deq_chunk(type, W + (size_t)(n + r) * row_bytes, k0, kc, tmp + (size_t)r * kc);
        else memset(tmp + (size_t)r * kc, 0, (size_t)kc * sizeof(float));
    }
    SPK_UNROLL
    for (int g = 0; g < NR / 8; g++) {
        for (int kk = 0; kk < kc; kk += 8) {
            __m256 v[8];
            SPK_UNROLL
            for (int i = 0; i < 8; i++) v[i] = _mm256_loadu_ps(tmp + (size_t)(g * 8 + i) * kc + kk);
            tr8(v);
            SPK_UNROLL
            for (int i = 0; i < 8; i++) _mm256_store_ps(pack + (size_t)(kk + i) * NR + g * 8, v[i]);
        }
    }
}

/* y: a full 16-wide tile (the driver redirects partial tiles through a buffer). */
T2 INL void mk_f32(const int mr, const int kc, const float *x, const size_t ldx, const float *p, float *y,
                   const size_t ldy, const int first) {
    __m256 c0[MR], c1[MR];
    SPK_UNROLL
    for (int i = 0; i < mr; i++) {
        c0[i] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + i * ldy);
        c1[i] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + i * ldy + 8);
    }
    for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(p + (size_t)k * NR), b1 = _mm256_load_ps(p + (size_t)k * NR + 8);
        SPK_UNROLL
        for (int i = 0; i < mr; i++) {
            const __m256 a = _mm256_broadcast_ss(x + i * ldx + k);
            c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
        }
    }
    SPK_UNROLL
    for (int i = 0; i < mr; i++) {
        _mm256_storeu_ps(y + i * ldy, c0[i]);
        _mm256_storeu_ps(y + i * ldy + 8, c1[i]);
    }
}

T2 static void mk_f32_any(int mr, int kc, const float *x, size_t ldx, const float *p, float *y, size_t ldy, int first,
                          int nr) {
    float tile[MR * NR];
    float *yt = y;
    size_t ldt = ldy;
    if (nr < NR) { /* partial tile: work on a copy */
        for (int i = 0; i < mr; i++)
            for (int l = 0; l < NR; l++) tile[i * NR + l] = (!first && l < nr) ? y[i * ldy + l] : 0.0f;
        yt = tile;
        ldt = NR;
    }
    switch (mr) {
#define C_(R) case R: mk_f32(R, kc, x, ldx, p, yt, ldt, first); break;
        C_(1) C_(2) C_(3) C_(4) C_(5) C_(6)
#undef C_
    default: break;
    }
    if (nr < NR) {
        for (int i = 0; i < mr; i++)
            for (int l = 0; l < nr; l++) y[i * ldy + l] = tile[i * NR + l];
    }
}

T2 static void matmul_f32_small_packed(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K,
                                       const float *X, int M, int ldx, float *Y, int ldy);

T2 static int matmul_f32(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K, const float *X, int M,
                         int ldx, float *Y, int ldy) {
    if (M < 6 && type != SPK_TYPE_F32 && type != SPK_TYPE_F16 && type != SPK_TYPE_BF16) {
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
        for (int k0 = 0; k0 < K; k0 += KC) {
            const int kc = SPK_MIN(KC, K - k0);
            pack_panel(type, W, row_bytes, n, nr, k0, kc, tmp, pack);
            for (int m = 0; m < M; m += MR)
                mk_f32_any(SPK_MIN(MR, M - m), kc, X + (size_t)m * ldx + k0, (size_t)ldx, pack, Y + (size_t)m * ldy + n,
                           (size_t)ldy, k0 == 0, nr);
        }
    }
    free(tmp);
    free(pack);
    return SPK_OK;
}

/* ---- Exact path, transposed: dX += dY · W --------------------------------------------------------- */

T2 INL void mk_t(const int mr, const int nc, const float *dy, const size_t ldy, const float *p, const size_t ps,
                 float *dx, const size_t ldx) {
    __m256 c0[MR], c1[MR];
    SPK_UNROLL
    for (int i = 0; i < mr; i++) {
        c0[i] = _mm256_loadu_ps(dx + i * ldx);
        c1[i] = _mm256_loadu_ps(dx + i * ldx + 8);
    }
    for (int n = 0; n < nc; n++) {
        const __m256 b0 = _mm256_load_ps(p + (size_t)n * ps), b1 = _mm256_load_ps(p + (size_t)n * ps + 8);
        SPK_UNROLL
        for (int i = 0; i < mr; i++) {
            const __m256 a = _mm256_broadcast_ss(dy + i * ldy + n);
            c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
        }
    }
    SPK_UNROLL
    for (int i = 0; i < mr; i++) {
        _mm256_storeu_ps(dx + i * ldx, c0[i]);
        _mm256_storeu_ps(dx + i * ldx + 8, c1[i]);
    }
}

T2 static void mk_t_any(int mr, int nc, const float *dy, size_t ldy, const float *p, size_t ps, float *dx, size_t ldx) {
    switch (mr) {
#define C_(R) case R: mk_t(R, nc, dy, ldy, p, ps, dx, ldx); break;
        C_(1) C_(2) C_(3) C_(4) C_(5) C_(6)
#undef C_
    default: break;
    }
}

T2 static int matmul_t_f32(int type, const uint8_t *W, size_t row_bytes, int N, int K, const float *dY, int M, int ldy,
                           float *dX, int ldx, int k0, int k1) {
    (void)K;
    const int pw = spk_is_kquant(type) ? 256 : 32;
    const int nc_max = 8192 / pw;
    float *pack = spk_alloc((size_t)nc_max * pw * sizeof(float));
    if (!pack) return SPK_ENOMEM;
    for (int kb = k0; kb < k1; kb += pw) {
        const int kw = SPK_MIN(pw, k1 - kb);
        for (int n = 0; n < N; n += nc_max) {
            const int nc = SPK_MIN(nc_max, N - n);
            for (int r = 0; r < nc; r++) deq_chunk(type, W + (size_t)(n + r) * row_bytes, kb, kw, pack + (size_t)r * pw);
            for (int m = 0; m < M; m += MR) {
                const int mr = SPK_MIN(MR, M - m);
                for (int s = 0; s < kw; s += 16)
                    mk_t_any(mr, nc, dY + (size_t)m * ldy + n, (size_t)ldy, pack + s, (size_t)pw,
                             dX + (size_t)m * ldx + kb + s, (size_t)ldx);
            }
        }
    }
    free(pack);
    return SPK_OK;
}

/* ---- Int8 path (two variants from one source) ----------------------------------------------------- */

#define MRQ2 4
#define KCQ2 512

INL size_t act_off(const int type, const int j) {
    switch (type) {
    case SPK_TYPE_Q4_K: return (size_t)(j >> 3) * SPK_Q8_K_BYTES + 4 + (j & 7) * 32;
    case SPK_TYPE_Q6_K: return (size_t)(j >> 4) * SPK_Q8_K_BYTES + 4 + (j & 15) * 16;
    default: return (size_t)j * SPK_Q8_0_BYTES + 2;
    }
}

/* In-lane 4×4 dword transpose of 8 rows × 16 bytes at rows[r] + off: T[t] element r = dword t of row r. */
T2 INL void tr8x16b(const uint8_t *const *rows, size_t off, __m256i T[4]) {
    __m256i R[4];
    SPK_UNROLL
    for (int e = 0; e < 4; e++) {
        const __m128i a = _mm_loadu_si128((const __m128i *)(rows[e] + off));
        const __m128i b = _mm_loadu_si128((const __m128i *)(rows[4 + e] + off));
        R[e] = _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
    }
    const __m256i t0 = _mm256_unpacklo_epi32(R[0], R[1]), t1 = _mm256_unpackhi_epi32(R[0], R[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(R[2], R[3]), t3 = _mm256_unpackhi_epi32(R[2], R[3]);
    T[0] = _mm256_unpacklo_epi64(t0, t2);
    T[1] = _mm256_unpackhi_epi64(t0, t2);
    T[2] = _mm256_unpacklo_epi64(t1, t3);
    T[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* Q4_K / Q6_K, one 16-row group, whole super-blocks; quants by SIMD transposes, scales per row. */
T2 static void pack_kquant_group(int type, const uint8_t *const rows[16], int j0, int nsb, uint8_t *out) {
    const size_t stride = spk_pack_q8_stride(type, SPK_Q8_U8); /* K-quants have one plane in both modes */
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    const int per = type == SPK_TYPE_Q4_K ? 8 : 16;
    const size_t bb = type == SPK_TYPE_Q4_K ? SPK_Q4_K_BYTES : SPK_Q6_K_BYTES;
    for (int sb = j0 / per; sb < (j0 + nsb) / per; sb++) {
        const size_t off = (size_t)sb * bb;
        uint8_t *base = out + (size_t)(sb * per - j0) * stride;
        for (int r = 0; r < 16; r++) { /* scales, decoded once per row and super-block */
            const uint8_t *b = rows[r] + off;
            if (type == SPK_TYPE_Q4_K) {
                const float d = _cvtsh_ss(spk_rd16(b)), dmin = _cvtsh_ss(spk_rd16(b + 2));
                for (int i = 0; i < 8; i++) {
                    int sc, mn;
                    spk_q4k_scale_min(i, b + 4, &sc, &mn);
                    float *sw = (float *)(base + (size_t)i * stride + 512);
                    sw[r] = d * (float)sc;
                    sw[16 + r] = dmin * (float)mn;
                }
            } else {
                const float d = _cvtsh_ss(spk_rd16(b + 208));
                for (int i = 0; i < 16; i++) {
                    float *sw = (float *)(base + (size_t)i * stride + 256);
                    sw[r] = d * (float)((const int8_t *)(b + 192))[i];
                    sw[16 + r] = 0.0f;
                }
            }
        }
        for (int g8 = 0; g8 < 2; g8++) {
            const uint8_t *const *rr = rows + 8 * g8;
            const size_t lane = 32 * (size_t)g8;
            if (type == SPK_TYPE_Q4_K) {
                for (int p = 0; p < 4; p++) {
                    for (int h = 0; h < 2; h++) {
                        __m256i T[4];
                        tr8x16b(rr, off + 16 + 32 * p + 16 * h, T);
                        SPK_UNROLL
                        for (int t = 0; t < 4; t++) {
                            _mm256_store_si256((__m256i *)(base + (size_t)(2 * p) * stride + (4 * h + t) * 64 + lane),
                                               _mm256_and_si256(T[t], m4));
                            _mm256_store_si256((__m256i *)(base + (size_t)(2 * p + 1) * stride + (4 * h + t) * 64 + lane),
                                               _mm256_and_si256(_mm256_srli_epi16(T[t], 4), m4));
                        }
                    }
                }
            } else {
                for (int h = 0; h < 2; h++) {
                    for (int p0 = 0; p0 < 32; p0 += 16) {
                        __m256i A[4], C[4], H[4];
                        tr8x16b(rr, off + 64 * h + p0, A);
                        tr8x16b(rr, off + 64 * h + 32 + p0, C);
                        tr8x16b(rr, off + 128 + 32 * h + p0, H);
                        const int i0 = 8 * h + p0 / 16;
                        SPK_UNROLL
                        for (int t = 0; t < 4; t++) {
                            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(A[t], m4), _mm256_slli_epi16(_mm256_and_si256(H[t], m3), 4));
                            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(C[t], m4),
                                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H[t], 2), m3), 4));
                            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(A[t], 4), m4),
                                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H[t], 4), m3), 4));
                            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(C[t], 4), m4),
                                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H[t], 6), m3), 4));
                            _mm256_store_si256((__m256i *)(base + (size_t)(i0 + 0) * stride + t * 64 + lane), q0);
                            _mm256_store_si256((__m256i *)(base + (size_t)(i0 + 2) * stride + t * 64 + lane), q1);
                            _mm256_store_si256((__m256i *)(base + (size_t)(i0 + 4) * stride + t * 64 + lane), q2);
                            _mm256_store_si256((__m256i *)(base + (size_t)(i0 + 6) * stride + t * 64 + lane), q3);
                        }
                    }
                }
            }
        }
    }
}

/* Packs sub-blocks [j0, j0+nsb) of rows [n_first, n_first+nrows) (nrows ≤ 16) in the layout of pack.h. */
T2 static void pack_q8_group(int type, const uint8_t *W, size_t row_bytes, int n_first, int nrows, int j0, int nsb,
                             int q8mode, uint8_t *out) {
    /* Lanes past nrows re-read the last row: finite values whose results are never stored. */
    const uint8_t *rows[16];
    for (int r = 0; r < 16; r++) rows[r] = W + (size_t)(n_first + (r < nrows ? r : nrows - 1)) * row_bytes;
    if (spk_is_kquant(type)) {
        pack_kquant_group(type, rows, j0, nsb, out);
        return;
    }
    const size_t stride = spk_pack_q8_stride(type, q8mode);
    const size_t bb = type == SPK_TYPE_Q4_0 ? SPK_Q4_0_BYTES : type == SPK_TYPE_Q4_1 ? SPK_Q4_1_BYTES : SPK_Q8_0_BYTES;
    const int qoff = type == SPK_TYPE_Q4_1 ? 4 : 2;
    const int planes = (type == SPK_TYPE_Q8_0 && q8mode == SPK_Q8_SIGN) ? 2 : 1;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int jj = 0; jj < nsb; jj++) {
        const size_t off = (size_t)(j0 + jj) * bb;
        uint8_t *dst = out + (size_t)jj * stride;
        const int halves = type == SPK_TYPE_Q8_0 ? 2 : 1;
        for (int h = 0; h < halves; h++) {
            for (int g8 = 0; g8 < 2; g8++) { /* rows 8*g8 .. 8*g8+7 */
                /* reg e, 128-bit lane g <- 16 quant bytes of row 8*g8 + 4g + e; an in-lane 4×4 dword
                   transpose gives T[t] with element r = dword t of row 8*g8 + r. */
                __m256i R[4];
                SPK_UNROLL
                for (int e = 0; e < 4; e++) {
                    const __m128i a = _mm_loadu_si128((const __m128i *)(rows[8 * g8 + e] + off + qoff + 16 * h));
                    const __m128i b = _mm_loadu_si128((const __m128i *)(rows[8 * g8 + 4 + e] + off + qoff + 16 * h));
                    R[e] = _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
                }
                const __m256i t0 = _mm256_unpacklo_epi32(R[0], R[1]), t1 = _mm256_unpackhi_epi32(R[0], R[1]);
                const __m256i t2 = _mm256_unpacklo_epi32(R[2], R[3]), t3 = _mm256_unpackhi_epi32(R[2], R[3]);
                const __m256i T[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                                      _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
                SPK_UNROLL
                for (int t = 0; t < 4; t++) {
                    uint8_t *line = dst + 32 * g8;
                    if (type == SPK_TYPE_Q8_0) {
                        if (planes == 2) {
                            _mm256_store_si256((__m256i *)(line + (4 * h + t) * 64), _mm256_abs_epi8(T[t]));
                            _mm256_store_si256((__m256i *)(line + 512 + (4 * h + t) * 64), T[t]);
                        } else {
                            _mm256_store_si256((__m256i *)(line + (4 * h + t) * 64),
                                               _mm256_xor_si256(T[t], _mm256_set1_epi8((char)0x80)));
                        }
                    } else {
                        _mm256_store_si256((__m256i *)(line + t * 64), _mm256_and_si256(T[t], m4));
                        _mm256_store_si256((__m256i *)(line + (4 + t) * 64), _mm256_and_si256(_mm256_srli_epi16(T[t], 4), m4));
                    }
                }
            }
        }
        uint16_t d16[16], m16[16];
        for (int r = 0; r < 16; r++) {
            memcpy(&d16[r], rows[r] + off, 2);
            memcpy(&m16[r], rows[r] + off + 2, 2);
        }
        float *sw = (float *)(dst + stride - 128);
        _mm256_store_ps(sw, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d16)));
        _mm256_store_ps(sw + 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d16 + 8))));
        if (type == SPK_TYPE_Q4_1) {
            _mm256_store_ps(sw + 16, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)m16)));
            _mm256_store_ps(sw + 24, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(m16 + 8))));
        } else {
            _mm256_store_ps(sw + 16, _mm256_setzero_ps());
            _mm256_store_ps(sw + 24, _mm256_setzero_ps());
        }
    }
}

/*
 * Exact path for few X rows on block types: the int8 packer's output (quants transposed to
 * [step][row][4], per-row scale and offset vectors; Q8_0 as w+128) is dequantized one column at a time,
 * bit-identically to the reference, and fed to per-row fma chains in k order.
 */
#define MR_SMALL2 5
T2 INL __m256 deq_col(const int type, __m256i q, __m256 sw, __m256 ow) {
    switch (type) {
    case SPK_TYPE_Q4_0: return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(8))), sw);
    case SPK_TYPE_Q4_1: return _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q), sw), ow);
    case SPK_TYPE_Q8_0: return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(128))), sw);
    case SPK_TYPE_Q4_K: return _mm256_sub_ps(_mm256_mul_ps(sw, _mm256_cvtepi32_ps(q)), ow);
    default: return _mm256_mul_ps(sw, _mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(32))));
    }
}

T2 INL void mk_small_packed(const int type, const int mr, const uint8_t *pk, const int nsb, const float *x,
                            const size_t ldx, __m256 acc[2 * MR_SMALL2]) {
    const int sb = type == SPK_TYPE_Q6_K ? 16 : 32;
    const size_t stride = (size_t)sb * 16 + 128;
    const __m256i byte = _mm256_set1_epi32(0xFF);
    for (int jj = 0; jj < nsb; jj++) {
        const uint8_t *g = pk + (size_t)jj * stride;
        const float *f = (const float *)(g + sb * 16);
        const __m256 sw0 = _mm256_load_ps(f), sw1 = _mm256_load_ps(f + 8);
        const __m256 ow0 = _mm256_load_ps(f + 16), ow1 = _mm256_load_ps(f + 24);
        for (int t = 0; t < sb / 4; t++) {
            const __m256i P0 = _mm256_load_si256((const __m256i *)(g + 64 * t));
            const __m256i P1 = _mm256_load_si256((const __m256i *)(g + 64 * t + 32));
            SPK_UNROLL
            for (int c = 0; c < 4; c++) {
                const __m256 w0 = deq_col(type, _mm256_and_si256(_mm256_srli_epi32(P0, 8 * c), byte), sw0, ow0);
                const __m256 w1 = deq_col(type, _mm256_and_si256(_mm256_srli_epi32(P1, 8 * c), byte), sw1, ow1);
                const int k = jj * sb + 4 * t + c;
                SPK_UNROLL
                for (int i = 0; i < mr; i++) {
                    const __m256 a = _mm256_broadcast_ss(x + i * ldx + k);
                    acc[2 * i] = _mm256_fmadd_ps(a, w0, acc[2 * i]);
                    acc[2 * i + 1] = _mm256_fmadd_ps(a, w1, acc[2 * i + 1]);
                }
            }
        }
    }
}

T2 static void matmul_f32_small_packed(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K,
                                       const float *X, int M, int ldx, float *Y, int ldy) {
    const int sb = spk_q8_subblock(type);
    const int kcq = SPK_MIN(KCQ2, K);
    uint8_t pk[(KCQ2 / 16) * (16 * 16 + 128)] __attribute__((aligned(64)));
    for (int n = n0; n < n1; n += 16) {
        const int nr = SPK_MIN(16, n1 - n);
        for (int m = 0; m < M; m += MR_SMALL2) {
            const int mr = SPK_MIN(MR_SMALL2, M - m);
            __m256 acc[2 * MR_SMALL2];
            for (int i = 0; i < 2 * MR_SMALL2; i++) acc[i] = _mm256_setzero_ps();
            for (int k0 = 0; k0 < K; k0 += kcq) {
                const int kc = SPK_MIN(kcq, K - k0);
                pack_q8_group(type, W, row_bytes, n, nr, k0 / sb, kc / sb, SPK_Q8_U8, pk);
                const float *x = X + (size_t)m * ldx + k0;
                switch (type * 8 + mr) {
#define S_(T, R) case T * 8 + R: mk_small_packed(T, R, pk, kc / sb, x, (size_t)ldx, acc); break;
#define S5(T) S_(T, 1) S_(T, 2) S_(T, 3) S_(T, 4) S_(T, 5)
                    S5(SPK_TYPE_Q4_0) S5(SPK_TYPE_Q4_1) S5(SPK_TYPE_Q8_0) S5(SPK_TYPE_Q4_K) S5(SPK_TYPE_Q6_K)
#undef S5
#undef S_
                default: break;
                }
            }
            for (int i = 0; i < mr; i++) {
                float tile[16];
                _mm256_storeu_ps(tile, acc[2 * i]);
                _mm256_storeu_ps(tile + 8, acc[2 * i + 1]);
                memcpy(Y + (size_t)(m + i) * ldy + n, tile, (size_t)nr * sizeof(float));
            }
        }
    }
}

#define Q8_TARGET T2
#define Q8_VNNI 0
#define Q8_NAME(x) x##_mb
#include "avx2_q8.inc"
#undef Q8_TARGET
#undef Q8_VNNI
#undef Q8_NAME

#define Q8_TARGET __attribute__((target("avx2,fma,f16c,avxvnni")))
#define Q8_VNNI 1
#define Q8_NAME(x) x##_vnni
#include "avx2_q8.inc"
#undef Q8_TARGET
#undef Q8_VNNI
#undef Q8_NAME

/* ---- Activation quantizers (bit-identical to the reference; rows holding NaN are unspecified) -------- */

T2 INL __m256 roundf8(__m256 v) {
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(signbit, v);
    const __m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 up = _mm256_cmp_ps(_mm256_sub_ps(a, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 r = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
    return _mm256_or_ps(r, _mm256_and_ps(v, signbit));
}

T2 INL float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 32 int32 lanes (in range of int8) to 32 bytes in order. */
T2 INL void store_i8x32(uint8_t *dst, __m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    const __m256i v = _mm256_packs_epi16(ab, cd);
    _mm256_storeu_si256((__m256i *)dst, _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

T2 static void quantize_q8_0(const float *x, uint8_t *y, int k) {
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    for (int i = 0; i < k / 32; i++, x += 32, y += SPK_Q8_0_BYTES) {
        __m256 v[4], m = _mm256_setzero_ps();
        SPK_UNROLL
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(x + 8 * j);
            m = _mm256_max_ps(m, _mm256_andnot_ps(signbit, v[j]));
        }
        const float amax = hmax8(m);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = spk_f32_to_f16(d);
        memcpy(y, &dh, 2);
        const __m256 s = _mm256_set1_ps(id);
        __m256i q[4];
        SPK_UNROLL
        for (int j = 0; j < 4; j++) q[j] = _mm256_cvtps_epi32(roundf8(_mm256_mul_ps(v[j], s)));
        store_i8x32(y + 2, q[0], q[1], q[2], q[3]);
    }
}

T2 static void quantize_q8_K(const float *x, uint8_t *y, int k) {
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    for (int i = 0; i < k / 256; i++, x += 256, y += SPK_Q8_K_BYTES) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 32; j++) m = _mm256_max_ps(m, _mm256_andnot_ps(signbit, _mm256_loadu_ps(x + 8 * j)));
        const float amax = hmax8(m);
        if (amax == 0.0f) {
            memset(y, 0, SPK_Q8_K_BYTES);
            continue;
        }
        int first = 0;
        while (fabsf(x[first]) != amax) first++;
        const float iscale = -127.0f / x[first];
        const __m256 s = _mm256_set1_ps(iscale);
        const __m256i hi = _mm256_set1_epi32(127);
        for (int j = 0; j < 8; j++) { /* 32 elements: two sums of 16 */
            __m256i q[4];
            SPK_UNROLL
            for (int h = 0; h < 4; h++)
                q[h] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(s, _mm256_loadu_ps(x + 32 * j + 8 * h))), hi);
            store_i8x32(y + 4 + 32 * j, q[0], q[1], q[2], q[3]);
            for (int g = 0; g < 2; g++) {
                const __m256i t = _mm256_add_epi32(q[2 * g], q[2 * g + 1]);
                __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
                u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4E));
                u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0xB1));
                const int16_t sum = (int16_t)_mm_cvtsi128_si32(u);
                memcpy(y + 260 + 2 * (2 * j + g), &sum, 2);
            }
        }
        const float d = 1.0f / iscale;
        memcpy(y, &d, 4);
    }
}

const struct spk_kernels spk_kernels_avx2_table = {
    .isa = SPK_ISA_AVX2,
    .name = "avx2",
    .matmul_f32 = matmul_f32,
    .matmul_t_f32 = matmul_t_f32,
    .matmul_q8 = matmul_q8_mb,
    .quantize_q8_0 = quantize_q8_0,
    .quantize_q8_K = quantize_q8_K,
};

/* Same kernels, int8 path on AVX-VNNI (chosen by spk_kernels_get when the CPU has it). */
const struct spk_kernels spk_kernels_avx2vnni_table = {
    .isa = SPK_ISA_AVX2,
    .name = "avx2-vnni",
    .matmul_f32 = matmul_f32,
    .matmul_t_f32 = matmul_t_f32,
    .matmul_q8 = matmul_q8_vnni,
    .quantize_q8_0 = quantize_q8_0,
    .quantize_q8_K = quantize_q8_K,
};

#endif
