/*
 * internal.h — shared declarations of the CKernels target (not part of the public header).
 *
 * Raw block access: blocks are read by byte offset with memcpy (never through struct pointers), so the
 * code does not depend on struct padding or on the alignment of mapped model files.
 */
#ifndef SOFTPROMPTKIT_CKERNELS_INTERNAL_H
#define SOFTPROMPTKIT_CKERNELS_INTERNAL_H

#include "ckernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Products and sums must round separately everywhere (bit-exact dequantization, fixed fma chains). */
#pragma STDC FP_CONTRACT OFF

/* SPK_NO_SIMD builds the portable library only (what non-x86 targets get), for testing that build. */
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(SPK_NO_SIMD)
#define SPK_X86 1
#else
#define SPK_X86 0
#endif

/* Full unrolling of register-tile loops (trip counts are compile-time constants after inlining). */
#define SPK_UNROLL _Pragma("unroll")

#define SPK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SPK_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Block sizes (elements) and byte sizes. */
#define SPK_QK 32
#define SPK_QK_K 256
#define SPK_Q4_0_BYTES 18
#define SPK_Q4_1_BYTES 20
#define SPK_Q8_0_BYTES 34
#define SPK_Q8_1_BYTES 36
#define SPK_Q4_K_BYTES 144
#define SPK_Q6_K_BYTES 210
#define SPK_Q8_K_BYTES 292

static inline uint16_t spk_rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline float spk_rdf32(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

static inline int16_t spk_rdi16(const uint8_t *p) {
    int16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* Exact IEEE binary16 -> binary32. */
static inline float spk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t mant = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: value = mant * 2^-24; normalise */
            uint32_t e = 113;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                e--;
            }
            bits = sign | (e << 23) | ((mant & 0x3FFu) << 13);
        }
    } else if (exp == 31) { /* infinity, or NaN made quiet (as F16C's vcvtph2ps does) */
        bits = sign | 0x7F800000u | (mant << 13) | (mant ? 0x00400000u : 0u);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* binary32 -> binary16, round to nearest even; NaN becomes a quiet NaN keeping the payload's top bits. */
static inline uint16_t spk_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* >= 65520 rounds to infinity */
    if (ax < 0x38800000u) {                                     /* below 2^-14: subnormal or zero */
        /* Adding 0.5 (ulp 2^-24) rounds |f| to a multiple of 2^-24 (nearest even); the low bits are
           then the subnormal mantissa (0x400 when it rounds up to the smallest normal). */
        float a, half = 0.5f;
        memcpy(&a, &ax, 4);
        a += half;
        uint32_t ab;
        memcpy(&ab, &a, 4);
        return (uint16_t)(sign | (ab - 0x3F000000u));
    }
    uint32_t odd = (ax >> 13) & 1u;
    ax += 0xC8000FFFu + odd; /* rebias exponent (-112 << 23, mod 2^32) and round to nearest even */
    return (uint16_t)(sign | (ax >> 13));
}

static inline float spk_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t spk_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

/* Q4_K 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes (ggml's get_scale_min_k4). */
static inline void spk_q4k_scale_min(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static inline int spk_is_kquant(int type) { return type == SPK_TYPE_Q4_K || type == SPK_TYPE_Q6_K; }

/* 64-byte aligned scratch. */
static inline void *spk_alloc(size_t bytes) {
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes);
}

/* ---- Int8 path: per-(row, sub-block) activation terms, shared by all levels ---------------------- */

/* Sub-block length used by the int8 path for a weight type (32, or 16 for Q6_K). */
static inline int spk_q8_subblock(int type) { return type == SPK_TYPE_Q6_K ? 16 : 32; }

/* Pointer to the activation quants of sub-block j in a quantized activation row. */
static inline const int8_t *spk_act_qs(int type, const uint8_t *row, int j) {
    switch (type) {
    case SPK_TYPE_Q4_K: return (const int8_t *)(row + (size_t)(j >> 3) * SPK_Q8_K_BYTES + 4 + (j & 7) * 32);
    case SPK_TYPE_Q6_K: return (const int8_t *)(row + (size_t)(j >> 4) * SPK_Q8_K_BYTES + 4 + (j & 15) * 16);
    default: return (const int8_t *)(row + (size_t)j * SPK_Q8_0_BYTES + 2);
    }
}

/*
 * Activation terms of one quantized row: for each sub-block j, the integer start of the dot product
 * (the offset correction), the activation scale dx, and the activation part of the offset term cx.
 * `u8_q8` selects the Q8_0 weight encoding used by the VNNI kernels (w + 128 as u8, start -128·Σx).
 */
void spk_act_terms(int type, const uint8_t *row, int K, int u8_q8, int32_t *init, float *dx, float *cx);

/* ---- Scalar references (ref.c) -------------------------------------------------------------------- */

/* Dequantizes elements [k0, k0+n) of a row (k0 and n whole blocks). */
void spk_ref_dequant(int type, const uint8_t *row, int64_t k0, int64_t n, float *y);

int spk_ref_matmul_f32(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K, const float *X,
                       int M, int ldx, float *Y, int ldy);
int spk_ref_matmul_t_f32(int type, const uint8_t *W, size_t row_bytes, int N, int K, const float *dY, int M,
                         int ldy, float *dX, int ldx, int k0, int k1);
int spk_ref_matmul_q8(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K, const uint8_t *Xq,
                      size_t xq_row_bytes, int M, float *Y, int ldy);
void spk_ref_quantize_q8_0(const float *x, uint8_t *y, int k);
void spk_ref_quantize_q8_K(const float *x, uint8_t *y, int k);

/* ---- Kernel table --------------------------------------------------------------------------------- */

struct spk_kernels {
    spk_isa isa;
    const char *name;
    int (*matmul_f32)(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K, const float *X,
                      int M, int ldx, float *Y, int ldy);
    int (*matmul_t_f32)(int type, const uint8_t *W, size_t row_bytes, int N, int K, const float *dY, int M,
                        int ldy, float *dX, int ldx, int k0, int k1);
    int (*matmul_q8)(int type, const uint8_t *W, size_t row_bytes, int n0, int n1, int K, const uint8_t *Xq,
                     size_t xq_row_bytes, int M, float *Y, int ldy);
    /* Quantizes one activation row to Q8_0 or Q8_K (bit-identical to the reference quantizers). */
    void (*quantize_q8_0)(const float *x, uint8_t *y, int k);
    void (*quantize_q8_K)(const float *x, uint8_t *y, int k);
};

#if SPK_X86
extern const struct spk_kernels spk_kernels_avx2_table;
extern const struct spk_kernels spk_kernels_avx2vnni_table;
extern const struct spk_kernels spk_kernels_avx512_table;
#endif

#endif
