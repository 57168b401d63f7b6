/*
 * ckernels.h — SoftPromptKit's hot CPU kernels over ggml quantized blocks.
 *
 * Everything here is plain C with runtime CPU dispatch: each kernel exists as a scalar reference
 * (ref.c, the definition of the result) and as AVX2 and AVX-512 versions (avx2.c, avx512.c) that are
 * compiled with per-function target attributes, so the library builds without global -m flags and runs
 * on any x86-64 (and builds on aarch64, where only the scalar path exists).
 *
 * Choosing an instruction set. Every kernel takes a `const spk_kernels *` first argument: NULL means
 * "the active set" (spk_kernels_active(): the best the CPU and OS support, or the level named by the
 * environment variable SOFTPROMPT_ISA=scalar|avx2|avx512, read once, always clamped to what the machine
 * supports). There is no way to change the level of a running process: tests and benchmarks pass
 * spk_kernels_get(level) explicitly, so one process can run every level at once.
 *
 * Types are ggml's numeric ids (GGUF tensor types). Supported weight types: F32, F16, BF16, Q4_0, Q4_1,
 * Q8_0, Q4_K, Q6_K. Block layouts (little-endian, f16 = IEEE binary16), as in ggml's ggml-common.h:
 *   Q4_0  18 B / 32: f16 d; u8 qs[16]                 x[j] = d*(lo(qs[j])-8), x[j+16] = d*(hi(qs[j])-8)
 *   Q4_1  20 B / 32: f16 d; f16 m; u8 qs[16]          x[j] = d*lo(qs[j]) + m, x[j+16] = d*hi(qs[j]) + m
 *   Q8_0  34 B / 32: f16 d; i8 qs[32]                 x[j] = d*qs[j]
 *   Q8_1  36 B / 32: f16 d; f16 s; i8 qs[32]          s = d*sum(qs) (activations only)
 *   Q4_K 144 B / 256: f16 d; f16 dmin; u8 scales[12]; u8 qs[128]  (8 sub-blocks of 32, 6-bit scale/min)
 *   Q6_K 210 B / 256: u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d  (16 sub-blocks of 16)
 *   Q8_K 292 B / 256: f32 d; i8 qs[256]; i16 bsums[16]  (activations only)
 * The matmuls decode weights bit-identically to gguf-py's `gguf.quants.dequantize` (products and sums
 * rounded separately, never fused: x = d*q + m is a multiply then an add). The reference dequantizer is
 * the Swift one in Sources/Quants (Quantization.dequantize); the tests check these kernels against it.
 *
 * Return codes: SPK_OK (0) or a negative SPK_E* value; no kernel prints, aborts or keeps state.
 * Kernels allocate small scratch buffers per call (panels of a few tens of KB, plus M*K/32 floats for
 * the int8 path) and return SPK_ENOMEM if that fails. All kernels are thread-safe; parallelise by
 * giving threads disjoint row ranges (spk_matmul_f32, spk_matmul_q8) or column ranges
 * (spk_matmul_t_f32).
 */
#ifndef SOFTPROMPTKIT_CKERNELS_H
#define SOFTPROMPTKIT_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Status codes                                                                                     */

enum {
    SPK_OK = 0,
    SPK_EINVAL = -1, /* a dimension, stride or range is out of bounds or misaligned with the block size */
    SPK_ETYPE = -2,  /* the tensor type is not supported by this kernel */
    SPK_ENOMEM = -3, /* scratch allocation failed */
};

/* ---------------------------------------------------------------------------------------------- */
/* Instruction-set levels and dispatch                                                             */

/** Instruction-set levels, ordered: a higher level needs everything a lower one does. */
typedef enum spk_isa {
    SPK_ISA_SCALAR = 0, /* portable C, the reference */
    SPK_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C (Haswell, Zen 1 and later); AVX-VNNI used when present */
    SPK_ISA_AVX512 = 2, /* AVX-512 F + BW + VL + VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later) */
} spk_isa;

/** The best level the CPU and the operating system support (cpuid + xgetbv), ignoring overrides. */
spk_isa spk_detect_isa(void);

/** Whether the AVX2 level can also use AVX-VNNI (VEX-encoded vpdpbusd) on this machine. */
int spk_has_avx_vnni(void);

/** The level in use: SOFTPROMPT_ISA (read once; unknown values ignored), clamped to spk_detect_isa(). */
spk_isa spk_active_isa(void);

/** "scalar", "avx2" or "avx512". */
const char *spk_isa_name(spk_isa isa);

/** An immutable set of kernels for one level (opaque; static storage, never freed). */
typedef struct spk_kernels spk_kernels;

/** The kernels for `isa`, clamped to what the machine supports. Never NULL. */
const spk_kernels *spk_kernels_get(spk_isa isa);

/** The kernels for spk_active_isa(). Never NULL. */
const spk_kernels *spk_kernels_active(void);

/** The level a kernel set actually runs at (after clamping). */
spk_isa spk_kernels_isa(const spk_kernels *kern);

/** A kernel set's name: "scalar", "avx2", "avx2-vnni" or "avx512". */
const char *spk_kernels_name(const spk_kernels *kern);

/**
 * Every kernel set this machine can run, lowest level first (scalar, avx2 [maddubs int8], avx2-vnni
 * [when AVX-VNNI is present], avx512). For tests and benchmarks; sets `*count`; never NULL.
 */
const spk_kernels *const *spk_kernels_all(int *count);

/* ---------------------------------------------------------------------------------------------- */
/* Types                                                                                            */

/** ggml type ids of the types these kernels know. */
enum {
    SPK_TYPE_F32 = 0,
    SPK_TYPE_F16 = 1,
    SPK_TYPE_Q4_0 = 2,
    SPK_TYPE_Q4_1 = 3,
    SPK_TYPE_Q8_0 = 8,
    SPK_TYPE_Q8_1 = 9,
    SPK_TYPE_Q4_K = 12,
    SPK_TYPE_Q6_K = 14,
    SPK_TYPE_Q8_K = 15,
    SPK_TYPE_BF16 = 30,
};

/** Elements per block of `type` (1 for F32/F16/BF16), or 0 if the type is unknown here. */
int spk_type_block_size(int type);

/** Bytes per block of `type`, or 0 if unknown. */
size_t spk_type_block_bytes(int type);

/** Bytes of a row of `k` elements, or 0 if the type is unknown or `k` is not a whole number of blocks. */
size_t spk_row_bytes(int type, int64_t k);

/** Whether `type` can be a weight type for spk_matmul_f32 / spk_matmul_t_f32. */
int spk_type_supported(int type);

/* ---------------------------------------------------------------------------------------------- */
/* Exact path: f32 activations times dequantized weights                                            */

/**
 * Y[m, n] = sum_k X[m, k] * W[n, k] for m in [0, M), n in [n_begin, n_end)   (Y = X · Wᵀ, overwritten).
 *
 * W is an N × K matrix of `type` stored as rows of `row_bytes` bytes (row n at W + n*row_bytes; only the
 * rows of the range are read). X is M × K f32 with row stride `ldx` floats; Y is M × (≥ n_end) f32 with
 * row stride `ldy` floats (column index = absolute n).
 *
 * Result contract (every level, every M, bit for bit): each weight is dequantized exactly as gguf-py
 * and Quantization.dequantize do, and each output is the chain acc = 0; acc = fmaf(X[m,k], W[n,k], acc)
 * for k = 0, 1, ..., K-1. So results do not depend on the instruction set, on M (a row's logits are the
 * same in a batch of 512 as alone) or on how rows are split across threads.
 *
 * Requirements: K > 0 and a multiple of 32 (of 256 for K-quants); row_bytes ≥ spk_row_bytes(type, K);
 * 0 ≤ n_begin ≤ n_end; M ≥ 0; ldx ≥ K; ldy ≥ n_end; Y overlaps neither X nor W. Returns SPK_OK,
 * SPK_EINVAL, SPK_ETYPE or SPK_ENOMEM.
 *
 * Speed: weight rows are dequantized once per 32-row (16 for AVX2) × 256-column panel into an L1
 * tile and reused across all M rows by a 12×32 (AVX-512) / 6×16 (AVX2) register-blocked micro-kernel.
 * For few rows (M < 8 on AVX-512, M < 6 on AVX2) and block types, the quants of 16 weight rows are
 * transposed as bytes instead and dequantized one column at a time with per-row scale vectors.
 */
int spk_matmul_f32(const spk_kernels *kern, int type, const void *W, size_t row_bytes, int n_begin,
                   int n_end, int K, const float *X, int M, int ldx, float *Y, int ldy);

/**
 * dX[m, k] += sum_n dY[m, n] * W[n, k] for m in [0, M), k in [k_begin, k_end)   (dX += dY · W).
 *
 * The backward of spk_matmul_f32 with respect to X. W is N × K as above (all N rows are read, only the
 * block columns of the range); dY is M × N f32 (stride ldy ≥ N); dX is M × (≥ k_end) f32 (stride
 * ldx ≥ k_end). Parallelise over disjoint column ranges: k_begin and k_end must be multiples of 32
 * (of 256 for K-quants), or k_end == K. (Splitting the M rows, by offsetting dY and dX, works too.)
 *
 * Result contract (every level, bit for bit): acc = dX[m,k]; acc = fmaf(dY[m,n], W[n,k], acc) for
 * n = 0, ..., N-1; dX[m,k] = acc.
 *
 * Requirements: K as for spk_matmul_f32; N ≥ 0; M ≥ 0; dX overlaps neither dY nor W. Returns SPK_OK,
 * SPK_EINVAL, SPK_ETYPE or SPK_ENOMEM.
 *
 * Speed: panels of weight rows (AVX-512: 64 rows × 128 columns, 32 × 256 for K-quants, rows outer; AVX2:
 * one block column of up to 256 rows) are dequantized once and reused across all M rows by a 12×32
 * (AVX-512) / 6×16 (AVX2) micro-kernel.
 */
int spk_matmul_t_f32(const spk_kernels *kern, int type, const void *W, size_t row_bytes, int N, int K,
                     const float *dY, int M, int ldy, float *dX, int ldx, int k_begin, int k_end);

/* ---------------------------------------------------------------------------------------------- */
/* Int8 path: activations quantized to 8 bits, integer dot products                               */

/**
 * Activation quantizers, bit-identical to ggml's reference quantizers (quantize_row_q8_0_ref,
 * quantize_row_q8_1_ref, quantize_row_q8_K_ref in ggml-quants.c): Q8_0/Q8_1 round with roundf (half
 * away from zero) after multiplying by 1/d, d = amax/127; Q8_1 stores s = f16(d * sum(q)); Q8_K uses
 * iscale = -127/max (max = the element of largest magnitude, first one on ties), rounds half to even,
 * clamps at 127, stores d = 1/iscale as f32 and the 16 sums of 16. (ggml's AVX quantize_row_q8_0/q8_1
 * round half to even and use 127/amax, so they can differ from the reference in the last unit; we match
 * the reference.) An all-zero Q8_K block gets d = 0 and zero sums (ggml leaves its sums unset). `k` must
 * be a multiple of 32 (256 for Q8_K). Return SPK_OK or SPK_EINVAL.
 */
int spk_quantize_row_q8_0(const float *x, void *y, int64_t k);
int spk_quantize_row_q8_1(const float *x, void *y, int64_t k);
int spk_quantize_row_q8_K(const float *x, void *y, int64_t k);

/**
 * Quantizes `M` rows of `K` floats (row stride ldx) into rows of `act_type` (Q8_0, Q8_1 or Q8_K; stride
 * xq_row_bytes), with the SIMD quantizers of `kern` (bit-identical to the reference ones above for
 * finite input; rows holding NaN give unspecified quants). Returns SPK_OK, SPK_EINVAL or SPK_ETYPE.
 */
int spk_quantize_rows(const spk_kernels *kern, int act_type, const float *X, int M, int ldx, int K,
                      void *Xq, size_t xq_row_bytes);

/**
 * The activation type spk_matmul_q8 expects for a weight type: Q8_0 for Q4_0, Q4_1 and Q8_0; Q8_K for
 * Q4_K and Q6_K; -1 if the weight type has no int8 path.
 *
 * This departs from ggml for Q4_1, which pairs it with Q8_1: ggml uses Q8_1's s = f16(d·Σq) for the
 * min term, while we recompute Σq exactly from the quants, which removes the f16 rounding of s and lets
 * one quantized activation row serve every 32-block weight type.
 */
int spk_vec_dot_type(int weight_type);

/**
 * Y[m, n] = Σ over blocks of (scaled integer dot of the weight block with the quantized activation
 * block), for m in [0, M), n in [n_begin, n_end), overwriting Y (stride ldy ≥ n_end).
 *
 * Xq holds M rows of spk_vec_dot_type(type) blocks, row m at Xq + m*xq_row_bytes, with quants in
 * [-127, 127] as the quantizers produce (the AVX2 kernel without VNNI uses |w|·sign(x, w) for Q8_0
 * weights, which needs x ≠ -128). Weight types: Q4_0, Q4_1, Q8_0, Q4_K, Q6_K. K must be a multiple of
 * the weight block size.
 *
 * Result contract (every level, bit for bit; integer dots are exact; dw, dx are the f16/f32 scales as
 * floats; sx = Σ of the activation quants of the block; acc starts at 0 and sub-blocks are taken in
 * order of k):
 *   Q4_0: acc = fmaf((float)Σ(q-8)·x,  dw*dx, acc)
 *   Q8_0: acc = fmaf((float)Σ w·x,     dw*dx, acc)
 *   Q4_1: acc = fmaf((float)Σ q·x,     dw*dx, acc); acc = fmaf(m, dx*(float)sx, acc)
 *   Q4_K (per sub-block j of 32, scale sc_j, min m_j; sx from the Q8_K bsums):
 *         acc = fmaf((float)Σ q·x, (d*sc_j)*dx, acc); acc = fmaf(dmin*m_j, -(dx*(float)sx_j), acc)
 *   Q6_K (per sub-block j of 16, signed scale sc_j):
 *         acc = fmaf((float)Σ (q-32)·x, (d*sc_j)*dx, acc)
 * Against the exact product X·Wᵀ the error is the activation rounding (≤ d/2 per element, i.e. about
 * 0.4 % of the block's largest |x|) plus f32 accumulation; the tests bound the second by 1e-5 of Σ|terms|.
 *
 * Speed: 16-row groups of weights are repacked per call ([4-byte step][16 rows] u8 quants plus per-row
 * scale vectors, pack.h) and multiplied by an 8×16 (AVX-512) / 4×16 (AVX2) micro-kernel on broadcast
 * activation dwords (vpdpbusd, or vpmaddubsw + vpmaddwd without VNNI).
 *
 * Returns SPK_OK, SPK_EINVAL, SPK_ETYPE or SPK_ENOMEM.
 */
int spk_matmul_q8(const spk_kernels *kern, int type, const void *W, size_t row_bytes, int n_begin,
                  int n_end, int K, const void *Xq, size_t xq_row_bytes, int M, float *Y, int ldy);

#ifdef __cplusplus
}
#endif

#endif /* SOFTPROMPTKIT_CKERNELS_H */
