/*
 * api.c — CPU feature detection, the kernel tables, argument validation and the public entry points.
 */
#include "internal.h"

#include <stdatomic.h>

#if SPK_X86
#include <cpuid.h>
#endif

/* ---- Detection ------------------------------------------------------------------------------------ */

#if SPK_X86
static uint64_t spk_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static int detect_features(int *avx_vnni) {
    *avx_vnni = 0;
#if SPK_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return SPK_ISA_SCALAR;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return SPK_ISA_SCALAR;
    const uint64_t xcr0 = spk_xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return SPK_ISA_SCALAR; /* OS saves XMM and YMM state */
    if (__get_cpuid_max(0, 0) < 7) return SPK_ISA_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    const int avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    const int avx512vnni = (c >> 11) & 1;
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    (void)b1, (void)c1, (void)d1;
    if (!(avx2 && fma && f16c)) return SPK_ISA_SCALAR;
    *avx_vnni = (a1 >> 4) & 1;
    const int os_avx512 = (xcr0 & 0xE0) == 0xE0; /* opmask, upper ZMM0-15, ZMM16-31 */
    if (os_avx512 && avx512f && avx512bw && avx512vl && avx512vnni) return SPK_ISA_AVX512;
    return SPK_ISA_AVX2;
#else
    return SPK_ISA_SCALAR;
#endif
}

/* -1 until first use; then the detected level, the AVX-VNNI flag and the active level. */
static _Atomic int g_detected = -1;
static _Atomic int g_avx_vnni = 0;
static _Atomic int g_active = -1;

spk_isa spk_detect_isa(void) {
    int v = atomic_load_explicit(&g_detected, memory_order_acquire);
    if (v < 0) {
        int vnni;
        v = detect_features(&vnni);
        atomic_store_explicit(&g_avx_vnni, vnni, memory_order_relaxed);
        atomic_store_explicit(&g_detected, v, memory_order_release);
    }
    return (spk_isa)v;
}

int spk_has_avx_vnni(void) {
    (void)spk_detect_isa();
    return atomic_load_explicit(&g_avx_vnni, memory_order_relaxed);
}

static spk_isa clamp_isa(int isa) {
    const int best = (int)spk_detect_isa();
    if (isa < 0) isa = 0;
    return (spk_isa)(isa > best ? best : isa);
}

spk_isa spk_active_isa(void) {
    int v = atomic_load_explicit(&g_active, memory_order_acquire);
    if (v >= 0) return (spk_isa)v;
    int want = (int)spk_detect_isa();
    const char *env = getenv("SOFTPROMPT_ISA");
    if (env) {
        if (strcmp(env, "scalar") == 0) want = SPK_ISA_SCALAR;
        else if (strcmp(env, "avx2") == 0) want = SPK_ISA_AVX2;
        else if (strcmp(env, "avx512") == 0) want = SPK_ISA_AVX512;
    }
    int expected = -1;
    atomic_compare_exchange_strong(&g_active, &expected, (int)clamp_isa(want));
    return (spk_isa)atomic_load_explicit(&g_active, memory_order_acquire);
}

const char *spk_isa_name(spk_isa isa) {
    switch (isa) {
    case SPK_ISA_SCALAR: return "scalar";
    case SPK_ISA_AVX2: return "avx2";
    case SPK_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

/* ---- Tables --------------------------------------------------------------------------------------- */

static const struct spk_kernels spk_kernels_scalar_table = {
    .isa = SPK_ISA_SCALAR,
    .name = "scalar",
    .matmul_f32 = spk_ref_matmul_f32,
    .matmul_t_f32 = spk_ref_matmul_t_f32,
    .matmul_q8 = spk_ref_matmul_q8,
    .quantize_q8_0 = spk_ref_quantize_q8_0,
    .quantize_q8_K = spk_ref_quantize_q8_K,
};

const spk_kernels *spk_kernels_get(spk_isa isa) {
    switch (clamp_isa((int)isa)) {
#if SPK_X86
    case SPK_ISA_AVX512: return &spk_kernels_avx512_table;
    case SPK_ISA_AVX2: return spk_has_avx_vnni() ? &spk_kernels_avx2vnni_table : &spk_kernels_avx2_table;
#endif
    default: return &spk_kernels_scalar_table;
    }
}

const spk_kernels *spk_kernels_active(void) { return spk_kernels_get(spk_active_isa()); }

spk_isa spk_kernels_isa(const spk_kernels *kern) { return kern ? kern->isa : spk_active_isa(); }

const char *spk_kernels_name(const spk_kernels *kern) { return (kern ? kern : spk_kernels_active())->name; }

const spk_kernels *const *spk_kernels_all(int *count) {
    static const spk_kernels *const scalar_only[] = {&spk_kernels_scalar_table};
#if SPK_X86
    static const spk_kernels *const upto_avx2[] = {&spk_kernels_scalar_table, &spk_kernels_avx2_table};
    static const spk_kernels *const upto_avx2vnni[] = {&spk_kernels_scalar_table, &spk_kernels_avx2_table,
                                                       &spk_kernels_avx2vnni_table};
    static const spk_kernels *const upto_avx512[] = {&spk_kernels_scalar_table, &spk_kernels_avx2_table,
                                                     &spk_kernels_avx512_table};
    static const spk_kernels *const everything[] = {&spk_kernels_scalar_table, &spk_kernels_avx2_table,
                                                    &spk_kernels_avx2vnni_table, &spk_kernels_avx512_table};
    const spk_isa best = spk_detect_isa();
    const int vnni = spk_has_avx_vnni();
    if (best == SPK_ISA_AVX512) {
        if (count) *count = vnni ? 4 : 3;
        return vnni ? everything : upto_avx512;
    }
    if (best == SPK_ISA_AVX2) {
        if (count) *count = vnni ? 3 : 2;
        return vnni ? upto_avx2vnni : upto_avx2;
    }
#endif
    if (count) *count = 1;
    return scalar_only;
}

static inline const spk_kernels *K_(const spk_kernels *kern) { return kern ? kern : spk_kernels_active(); }

/* ---- Types ---------------------------------------------------------------------------------------- */

int spk_type_block_size(int type) {
    switch (type) {
    case SPK_TYPE_F32:
    case SPK_TYPE_F16:
    case SPK_TYPE_BF16: return 1;
    case SPK_TYPE_Q4_0:
    case SPK_TYPE_Q4_1:
    case SPK_TYPE_Q8_0:
    case SPK_TYPE_Q8_1: return 32;
    case SPK_TYPE_Q4_K:
    case SPK_TYPE_Q6_K:
    case SPK_TYPE_Q8_K: return 256;
    default: return 0;
    }
}

size_t spk_type_block_bytes(int type) {
    switch (type) {
    case SPK_TYPE_F32: return 4;
    case SPK_TYPE_F16:
    case SPK_TYPE_BF16: return 2;
    case SPK_TYPE_Q4_0: return SPK_Q4_0_BYTES;
    case SPK_TYPE_Q4_1: return SPK_Q4_1_BYTES;
    case SPK_TYPE_Q8_0: return SPK_Q8_0_BYTES;
    case SPK_TYPE_Q8_1: return SPK_Q8_1_BYTES;
    case SPK_TYPE_Q4_K: return SPK_Q4_K_BYTES;
    case SPK_TYPE_Q6_K: return SPK_Q6_K_BYTES;
    case SPK_TYPE_Q8_K: return SPK_Q8_K_BYTES;
    default: return 0;
    }
}

size_t spk_row_bytes(int type, int64_t k) {
    const int bs = spk_type_block_size(type);
    if (bs == 0 || k < 0 || k % bs != 0) return 0;
    const uint64_t blocks = (uint64_t)(k / bs);
    const uint64_t bytes = spk_type_block_bytes(type);
    if (blocks > SIZE_MAX / bytes) return 0;
    return (size_t)(blocks * bytes);
}

int spk_type_supported(int type) {
    switch (type) {
    case SPK_TYPE_F32:
    case SPK_TYPE_F16:
    case SPK_TYPE_BF16:
    case SPK_TYPE_Q4_0:
    case SPK_TYPE_Q4_1:
    case SPK_TYPE_Q8_0:
    case SPK_TYPE_Q4_K:
    case SPK_TYPE_Q6_K: return 1;
    default: return 0;
    }
}

/* The column granularity of the matmuls: 32 for plain and 32-blocks, 256 for K-quants. */
static int col_unit(int type) { return spk_is_kquant(type) ? 256 : 32; }

/* ---- Matmuls -------------------------------------------------------------------------------------- */

int spk_matmul_f32(const spk_kernels *kern, int type, const void *W, size_t row_bytes, int n_begin, int n_end,
                   int K, const float *X, int M, int ldx, float *Y, int ldy) {
    if (!spk_type_supported(type)) return SPK_ETYPE;
    if (K <= 0 || K % col_unit(type) != 0) return SPK_EINVAL;
    if (row_bytes < spk_row_bytes(type, K)) return SPK_EINVAL;
    if (n_begin < 0 || n_end < n_begin || M < 0 || ldx < K || ldy < n_end) return SPK_EINVAL;
    if (M == 0 || n_end == n_begin) return SPK_OK;
    if (!W || !X || !Y) return SPK_EINVAL;
    return K_(kern)->matmul_f32(type, (const uint8_t *)W, row_bytes, n_begin, n_end, K, X, M, ldx, Y, ldy);
}

int spk_matmul_t_f32(const spk_kernels *kern, int type, const void *W, size_t row_bytes, int N, int K,
                     const float *dY, int M, int ldy, float *dX, int ldx, int k_begin, int k_end) {
    if (!spk_type_supported(type)) return SPK_ETYPE;
    const int unit = col_unit(type);
    if (K <= 0 || K % unit != 0) return SPK_EINVAL;
    if (row_bytes < spk_row_bytes(type, K)) return SPK_EINVAL;
    if (N < 0 || M < 0 || ldy < N || k_begin < 0 || k_end < k_begin || k_end > K || ldx < k_end) return SPK_EINVAL;
    if (k_begin % unit != 0 || (k_end % unit != 0 && k_end != K)) return SPK_EINVAL;
    if (M == 0 || N == 0 || k_end == k_begin) return SPK_OK;
    if (!W || !dY || !dX) return SPK_EINVAL;
    return K_(kern)->matmul_t_f32(type, (const uint8_t *)W, row_bytes, N, K, dY, M, ldy, dX, ldx, k_begin, k_end);
}

int spk_vec_dot_type(int weight_type) {
    switch (weight_type) {
    case SPK_TYPE_Q4_0:
    case SPK_TYPE_Q4_1:
    case SPK_TYPE_Q8_0: return SPK_TYPE_Q8_0;
    case SPK_TYPE_Q4_K:
    case SPK_TYPE_Q6_K: return SPK_TYPE_Q8_K;
    default: return -1;
    }
}

int spk_matmul_q8(const spk_kernels *kern, int type, const void *W, size_t row_bytes, int n_begin, int n_end,
                  int K, const void *Xq, size_t xq_row_bytes, int M, float *Y, int ldy) {
    const int act = spk_vec_dot_type(type);
    if (act < 0) return SPK_ETYPE;
    if (K <= 0 || K % spk_type_block_size(type) != 0) return SPK_EINVAL;
    if (row_bytes < spk_row_bytes(type, K) || xq_row_bytes < spk_row_bytes(act, K)) return SPK_EINVAL;
    if (n_begin < 0 || n_end < n_begin || M < 0 || ldy < n_end) return SPK_EINVAL;
    if (M == 0 || n_end == n_begin) return SPK_OK;
    if (!W || !Xq || !Y) return SPK_EINVAL;
    return K_(kern)->matmul_q8(type, (const uint8_t *)W, row_bytes, n_begin, n_end, K, (const uint8_t *)Xq,
                               xq_row_bytes, M, Y, ldy);
}

/* ---- Activation quantizers (ggml reference semantics) ---------------------------------------------- */

int spk_quantize_row_q8_0(const float *x, void *y, int64_t k) {
    if (k < 0 || k % 32 != 0 || (k > 0 && (!x || !y))) return SPK_EINVAL;
    uint8_t *out = (uint8_t *)y;
    for (int64_t i = 0; i < k / 32; i++, x += 32, out += SPK_Q8_0_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float v = fabsf(x[j]);
            amax = amax > v ? amax : v; /* ggml's MAX(amax, v) */
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = spk_f32_to_f16(d);
        memcpy(out, &dh, 2);
        for (int j = 0; j < 32; j++) ((int8_t *)(out + 2))[j] = (int8_t)roundf(x[j] * id);
    }
    return SPK_OK;
}

int spk_quantize_row_q8_1(const float *x, void *y, int64_t k) {
    if (k < 0 || k % 32 != 0 || (k > 0 && (!x || !y))) return SPK_EINVAL;
    uint8_t *out = (uint8_t *)y;
    for (int64_t i = 0; i < k / 32; i++, x += 32, out += SPK_Q8_1_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float v = fabsf(x[j]);
            amax = amax > v ? amax : v;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        int8_t *qs = (int8_t *)(out + 4);
        for (int j = 0; j < 32; j++) {
            qs[j] = (int8_t)roundf(x[j] * id);
            sum += qs[j];
        }
        const uint16_t dh = spk_f32_to_f16(d), sh = spk_f32_to_f16((float)sum * d);
        memcpy(out, &dh, 2);
        memcpy(out + 2, &sh, 2);
    }
    return SPK_OK;
}

/* ggml's nearest_int: round half to even through the float adder (valid for |v| < 2^22). */
static inline int nearest_int(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007FFFFF) - 0x00400000;
}

int spk_quantize_row_q8_K(const float *x, void *y, int64_t k) {
    if (k < 0 || k % 256 != 0 || (k > 0 && (!x || !y))) return SPK_EINVAL;
    uint8_t *out = (uint8_t *)y;
    for (int64_t i = 0; i < k / 256; i++, x += 256, out += SPK_Q8_K_BYTES) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < 256; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        int8_t *qs = (int8_t *)(out + 4);
        if (amax == 0.0f) {
            memset(out, 0, SPK_Q8_K_BYTES); /* d = 0, quants 0, sums 0 */
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < 256; j++) {
            const int v = nearest_int(iscale * x[j]);
            qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += qs[j * 16 + l];
            const int16_t s16 = (int16_t)sum;
            memcpy(out + 260 + 2 * j, &s16, 2);
        }
        const float d = 1.0f / iscale;
        memcpy(out, &d, 4);
    }
    return SPK_OK;
}

void spk_ref_quantize_q8_0(const float *x, uint8_t *y, int k) { (void)spk_quantize_row_q8_0(x, y, k); }
void spk_ref_quantize_q8_K(const float *x, uint8_t *y, int k) { (void)spk_quantize_row_q8_K(x, y, k); }

int spk_quantize_rows(const spk_kernels *kern, int act_type, const float *X, int M, int ldx, int K, void *Xq,
                      size_t xq_row_bytes) {
    if (act_type != SPK_TYPE_Q8_0 && act_type != SPK_TYPE_Q8_1 && act_type != SPK_TYPE_Q8_K) return SPK_ETYPE;
    const size_t rb = spk_row_bytes(act_type, K);
    if (M < 0 || K <= 0 || ldx < K || rb == 0 || xq_row_bytes < rb) return SPK_EINVAL;
    if (M == 0) return SPK_OK;
    if (!X || !Xq) return SPK_EINVAL;
    const spk_kernels *kk = K_(kern);
    for (int m = 0; m < M; m++) {
        const float *x = X + (size_t)m * ldx;
        uint8_t *y = (uint8_t *)Xq + (size_t)m * xq_row_bytes;
        switch (act_type) {
        case SPK_TYPE_Q8_0: kk->quantize_q8_0(x, y, K); break;
        case SPK_TYPE_Q8_K: kk->quantize_q8_K(x, y, K); break;
        default: (void)spk_quantize_row_q8_1(x, y, K); break;
        }
    }
    return SPK_OK;
}
