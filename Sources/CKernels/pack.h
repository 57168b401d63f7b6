/* pack.h — the packed weight layout of the int8 kernels (see pack.c). */
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

/* Packs sub-blocks [j0, j0+nsb) of rows [n_first, n_first+nrows) (nrows ≤ 16) into `out`. */
void spk_pack_q8_portable(int type, const uint8_t *W, size_t row_bytes, int n_first, int nrows, int j0, int nsb,
                          int q8mode, uint8_t *out);

#endif
