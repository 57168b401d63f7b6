#!/usr/bin/env python3
"""Regenerates Tests/Fixtures/quants/ (oracle data for Tests/QuantsTests).

Oracle: gguf-py's numpy implementation (`pip install gguf numpy`; written against gguf 0.19),
whose dequantizers mirror ggml's dequantize_row_* and whose Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/BF16
quantizers mirror ggml's quantize_row_*_ref. Deterministic: fixed seed, same bytes on every run.

Files (all little-endian, KB-sized):
  sizes.txt            "<id> <NAME> <block_size> <type_size>" per type, from gguf.GGML_QUANT_SIZES
  <type>.bin           encoded blocks for dequantization (random bytes with sane scale fields,
                       plus blocks made by gguf-py's quantizer where it has one)
  <type>.f32           their float32 decoding by gguf.quants.dequantize (Q8_K and F64, which
                       gguf-py does not decode, are computed here with numpy the way ggml does)
  quantize_input.f32   1024 float32 inputs (varied blocks, see make_quant_input)
  <type>.quant.bin     gguf.quants.quantize(quantize_input, type) for the types gguf-py quantizes

Usage: python3 Tools/scripts/gen_quant_fixtures.py [output_dir]
"""

import os
import sys
import warnings

import numpy as np
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

SEED = 20240611
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "quants")

# Byte offsets of the ggml_half fields of each block type (ggml-common.h), which random bytes
# must not turn into inf/NaN.
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.IQ4_NL: [0], T.IQ4_XS: [0],
}
BLOCKS = {32: 12, 256: 4}  # random blocks per file, by block size


def moderate_halves(rng, n):
    """n finite float16 scales: mixed signs, magnitudes 1e-4..4, a zero and a subnormal."""
    mags = 10.0 ** rng.uniform(-4, 0.6, size=n)
    vals = (mags * rng.choice([-1.0, 1.0], size=n)).astype(np.float16)
    vals[0] = 0.0
    if n > 1:
        vals[1] = np.float16(3e-6)  # subnormal half
    return vals


def random_blocks(rng, qtype):
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n = BLOCKS[block_size]
    raw = rng.integers(0, 256, size=(n, type_size), dtype=np.uint8)
    for off in HALF_FIELDS[qtype]:
        raw[:, off:off + 2] = moderate_halves(rng, n).view(np.uint8).reshape(n, 2)
    return raw


def quantized_blocks(rng, qtype):
    """Blocks made by gguf-py's own quantizer from gaussian data, when it has one."""
    block_size, _ = GGML_QUANT_SIZES[qtype]
    data = (rng.standard_normal((4, block_size)) * rng.uniform(0.01, 3, size=(4, 1))).astype(np.float32)
    try:
        return quants.quantize(data, qtype).reshape(4, -1)
    except NotImplementedError:
        return None


def write(name, array):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(array).tobytes())


def dequant_fixtures(rng):
    for qtype in HALF_FIELDS:
        blocks = random_blocks(rng, qtype)
        made = quantized_blocks(rng, qtype)
        if made is not None:
            blocks = np.concatenate([blocks, made])
        floats = quants.dequantize(blocks.reshape(-1), qtype).astype(np.float32)
        assert np.all(np.isfinite(floats)), qtype.name
        write(f"{qtype.name.lower()}.bin", blocks)
        write(f"{qtype.name.lower()}.f32", floats)

    # Q8_K: float d @0, int8 qs[256] @4, int16 bsums[16] @260; ggml decodes d * qs[j].
    n = 4
    raw = rng.integers(0, 256, size=(n, 292), dtype=np.uint8)
    d = (10.0 ** rng.uniform(-6, 1, size=n) * rng.choice([-1.0, 1.0], size=n)).astype(np.float32)
    d[0] = 0.0
    raw[:, 0:4] = d.view(np.uint8).reshape(n, 4)
    qs = raw[:, 4:260].view(np.int8).astype(np.float32)
    write("q8_k.bin", raw)
    write("q8_k.f32", (d.reshape(n, 1) * qs).astype(np.float32))

    # F32: arbitrary bit patterns (including NaN payloads and signaling NaNs) round trip exactly.
    bits = rng.integers(0, 2**32, size=256, dtype=np.uint64).astype(np.uint32)
    bits[:8] = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFBFFFFF, 0x00000001]
    write("f32.bin", bits)
    write("f32.f32", bits)

    # F16: all finite, infinite and quiet-NaN halves; signaling NaNs excluded because numpy keeps
    # them signaling while ggml's F16C path (and ours) quiets them.
    h = rng.integers(0, 2**16, size=512, dtype=np.uint32).astype(np.uint16)
    h[:8] = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x0001, 0x03FF, 0x7BFF]
    is_snan = ((h & 0x7C00) == 0x7C00) & ((h & 0x03FF) != 0) & ((h & 0x0200) == 0)
    h[is_snan] |= 0x0200
    write("f16.bin", h)
    write("f16.f32", quants.dequantize(h.view(np.uint8), T.F16).astype(np.float32))

    # BF16: any bit pattern; decoding is a 16-bit shift.
    b = rng.integers(0, 2**16, size=512, dtype=np.uint32).astype(np.uint16)
    b[:6] = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x7F81]
    write("bf16.bin", b)
    write("bf16.f32", quants.dequantize(b.view(np.uint8), T.BF16).astype(np.float32))

    # F64 (gguf-py has no decoder): numpy's round-to-nearest conversion.
    x = rng.standard_normal(256) * 10.0 ** rng.uniform(-50, 50, size=256)
    x[:8] = [0.0, -0.0, np.inf, -np.inf, 1e300, -1e-300, 3.4028235677973366e38, 1.401298464324817e-45]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write("f64.bin", x.astype("<f8"))
        write("f64.f32", x.astype(np.float32))


def make_quant_input(rng):
    """1024 floats = 32 blocks of 32 = 4 super-blocks of 256, with varied scales and edge cases."""
    x = np.empty((32, 32), dtype=np.float32)
    for i in range(32):
        x[i] = rng.standard_normal(32) * 10.0 ** rng.uniform(-3, 2)
    x[3] = 0.0                                         # all-zero block
    x[4] = 0.75                                        # constant block
    x[5] = -np.abs(x[5])                               # all negative
    x[6] = np.abs(x[6]) + 1.0                          # all positive, min > 0
    x[7] = np.arange(-15.5, 16.5, 1.0)                 # exact halves: rounding ties
    x[8] = np.concatenate([[127.0, -127.0], np.arange(-15, 15) + 0.5])  # amax tie, Q8_0 ties
    x[9, :] = rng.standard_normal(32) * 1e-3
    x[9, 7] = -8.0                                     # Q4_0/Q5_0 scale exactly -1 / -0.5
    x[10] = rng.standard_normal(32) * 1e-6             # tiny values, subnormal-ish half scales
    x[11] = rng.standard_normal(32) * 1e3              # large values
    x[12, :] = 0.0
    x[12, 5] = 1.0                                     # one spike
    x[13] = rng.standard_normal(32) + 100.0            # large offset, small spread
    return x.reshape(-1)


def quant_fixtures(rng):
    x = make_quant_input(rng)
    write("quantize_input.f32", x)
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16, T.F16):
        q = quants.quantize(x.reshape(4, 256), qtype)
        write(f"{qtype.name.lower()}.quant.bin", q.view(np.uint8).reshape(-1))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(SEED)
    with open(os.path.join(OUT, "sizes.txt"), "w") as f:
        for t in T:
            block, size = GGML_QUANT_SIZES[t]
            f.write(f"{t.value} {t.name} {block} {size}\n")
    dequant_fixtures(rng)
    quant_fixtures(rng)


if __name__ == "__main__":
    main()
