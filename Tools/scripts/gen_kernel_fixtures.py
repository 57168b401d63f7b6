#!/usr/bin/env python3
"""Regenerates Tests/Fixtures/kernels/: the independent oracle for the CKernels matmuls and quantizers.

For each weight type: raw weight bytes (Q4_0/Q4_1/Q8_0/F16/BF16/F32 from `gguf.quants.quantize` of random
floats, Q4_K/Q6_K as random valid bytes), their dequantization by `gguf.quants.dequantize`, and in float64
(numpy): Y = X·Wᵀ, dX = dY·W, and Yq = deq(Xq)·Wᵀ where Xq are the activations quantized to the weight
type's int8 partner. Activation quantization follows ggml's reference quantizers (quantize_row_q8_0_ref,
quantize_row_q8_1_ref, quantize_row_q8_K_ref), ported to numpy here; Q8_0 is cross-checked against
gguf-py's own Q8_0 quantizer. Rows with exact .5 ties check roundf (half away from zero) against
nearest_int (half to even).

Usage: python3 Tools/scripts/gen_kernel_fixtures.py   (needs gguf 0.19 and numpy)
"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "kernels")
rng = np.random.default_rng(20261129)

M = 5  # activation rows
SHAPES = {  # type -> (N rows, K columns)
    "F32": (19, 64), "F16": (19, 64), "BF16": (19, 64),
    "Q4_0": (19, 96), "Q4_1": (19, 96), "Q8_0": (19, 96),
    "Q4_K": (7, 512), "Q6_K": (7, 512),
}
INT8_PARTNER = {"Q4_0": "Q8_0", "Q4_1": "Q8_0", "Q8_0": "Q8_0", "Q4_K": "Q8_K", "Q6_K": "Q8_K"}


def save(name, arr):
    np.save(os.path.join(OUT, name + ".npy"), arr)


def roundf(v):
    """C roundf: half away from zero (gguf-py's helper, exact on float32 input)."""
    return gguf.quants.np_roundf(v)


def f16_bytes(v):
    return np.asarray(v, dtype=np.float32).astype(np.float16).reshape(-1).view(np.uint8)


def quantize_q8_0(x):
    out = []
    for blk in x.reshape(-1, 32).astype(np.float32):
        amax = np.float32(np.max(np.abs(blk)))
        d = np.float32(amax / np.float32(127))
        idv = np.float32(np.float32(1) / d) if d != 0 else np.float32(0)
        qs = roundf((blk * idv).astype(np.float32)).astype(np.int8)
        out.append(np.concatenate([f16_bytes(d), qs.view(np.uint8)]))
    return np.concatenate(out)


def quantize_q8_1(x):
    out = []
    for blk in x.reshape(-1, 32).astype(np.float32):
        amax = np.float32(np.max(np.abs(blk)))
        d = np.float32(amax / np.float32(127))
        idv = np.float32(np.float32(1) / d) if d != 0 else np.float32(0)
        qs = roundf((blk * idv).astype(np.float32)).astype(np.int8)
        s = np.float32(np.float32(int(qs.astype(np.int32).sum())) * d)
        out.append(np.concatenate([f16_bytes(d), f16_bytes(s), qs.view(np.uint8)]))
    return np.concatenate(out)


def quantize_q8_K(x):
    out = []
    for blk in x.reshape(-1, 256).astype(np.float32):
        i = int(np.argmax(np.abs(blk)))  # first index of the largest magnitude
        mx = blk[i]
        if np.abs(mx) == 0:
            out.append(np.zeros(292, dtype=np.uint8))  # d = 0, quants 0, sums 0
            continue
        iscale = np.float32(np.float32(-127) / mx)
        v = np.rint((iscale * blk).astype(np.float32)).astype(np.int32)  # half to even, as nearest_int
        qs = np.minimum(127, v).astype(np.int8)
        bsums = qs.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
        d = np.float32(np.float32(1) / iscale)
        out.append(np.concatenate([np.array([d], dtype=np.float32).view(np.uint8), qs.view(np.uint8),
                                   bsums.view(np.uint8)]))
    return np.concatenate(out)


def dequantize_act(raw, act, K):
    rows = []
    for row in raw:
        if act == "Q8_0":
            b = row.reshape(-1, 34)
            d = b[:, :2].copy().view(np.float16).astype(np.float64)
            q = b[:, 2:].copy().view(np.int8).astype(np.float64)
            rows.append((d * q).reshape(-1))
        else:
            b = row.reshape(-1, 292)
            d = b[:, :4].copy().view(np.float32).astype(np.float64)
            q = b[:, 4:260].copy().view(np.int8).astype(np.float64)
            rows.append((d * q).reshape(-1))
    return np.stack(rows)


def random_f16(shape, lo, hi):
    mag = np.exp(rng.uniform(np.log(lo), np.log(hi), size=shape)).astype(np.float32)
    return (mag * rng.choice([-1, 1], size=shape)).astype(np.float16)


def weights(name, N, K):
    if name in ("Q4_0", "Q4_1", "Q8_0"):
        w = rng.standard_normal((N, K)).astype(np.float32) * 0.05
        w[0, :32] = 0.0           # an all-zero block (d = 0)
        w[1, 32:64] *= 1e-3       # tiny scales (subnormal f16 d)
        w[2, :32] = np.abs(w[2, :32])  # one-signed block
        return gguf.quants.quantize(w, T[name])
    if name in ("F32", "F16", "BF16"):
        w = rng.standard_normal((N, K)).astype(np.float32)
        w[0, 0] = 0.0
        w[0, 1] = -0.0
        w[0, 2] = 1e-40 if name == "F32" else 3e-6  # subnormal in the stored type
        return gguf.quants.quantize(w, T[name]) if name != "F32" else w.view(np.uint8).reshape(N, -1)
    nb = K // 256
    raw = rng.integers(0, 256, size=(N, nb, 144 if name == "Q4_K" else 210), dtype=np.uint8)
    if name == "Q4_K":
        raw[:, :, 0:2] = random_f16((N, nb), 1e-5, 1e-2).view(np.uint8).reshape(N, nb, 2)
        raw[:, :, 2:4] = random_f16((N, nb), 1e-5, 1e-2).view(np.uint8).reshape(N, nb, 2)
    else:
        raw[:, :, 208:210] = random_f16((N, nb), 1e-5, 1e-2).view(np.uint8).reshape(N, nb, 2)
    return raw.reshape(N, -1)


def activations(K, partner):
    x = rng.standard_normal((M, K)).astype(np.float32)
    x[1, :32] = 0.0  # zero block (and a zero 16-group for Q8_K sums)
    if partner == "Q8_0":
        # amax 127 -> d = 1, id = 1: x*id are exact halves; roundf rounds them away from zero
        x[2, :32] = np.linspace(-15.5, 15.5, 32).astype(np.float32)
        x[2, 0] = 127.0
    else:
        x[1, :256] = 0.0  # an all-zero super-block
        # max = -127 -> iscale = 1: halves round to even
        x[2, :256] = (np.arange(256) % 32 - 15.5).astype(np.float32)
        x[2, 7] = -127.0
    x[3] *= 1e-3
    return x


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (N, K) in SHAPES.items():
        raw = np.ascontiguousarray(weights(name, N, K).reshape(N, -1))
        wdeq = gguf.quants.dequantize(raw, T[name]).astype(np.float32).reshape(N, K)
        partner = INT8_PARTNER.get(name, "Q8_0")
        x = activations(K, partner)
        dy = rng.standard_normal((M, N)).astype(np.float32)
        save(f"{name}_w", raw)
        save(f"{name}_wdeq", wdeq)
        save(f"{name}_x", x)
        save(f"{name}_dy", dy)
        w64 = wdeq.astype(np.float64)
        save(f"{name}_y", x.astype(np.float64) @ w64.T)
        save(f"{name}_dx", dy.astype(np.float64) @ w64)
        if name in INT8_PARTNER:
            q = np.stack([(quantize_q8_0 if partner == "Q8_0" else quantize_q8_K)(r) for r in x])
            if partner == "Q8_0":
                ref = gguf.quants.quantize(x, T.Q8_0).reshape(M, -1)
                assert np.array_equal(ref, q), "numpy Q8_0 port disagrees with gguf-py"
            save(f"{name}_xq", q)
            save(f"{name}_yq", dequantize_act(q, partner, K) @ w64.T)
    # Activation quantizers on their own (including the tie rows above).
    x = activations(512, "Q8_0")
    xk = activations(512, "Q8_K")
    save("act_x", x)
    save("act_xk", xk)
    save("act_q8_0", np.stack([quantize_q8_0(r) for r in x]))
    save("act_q8_1", np.stack([quantize_q8_1(r) for r in x]))
    save("act_q8_K", np.stack([quantize_q8_K(r) for r in xk]))


if __name__ == "__main__":
    main()
