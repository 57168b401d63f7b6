#!/usr/bin/env python3
"""Regenerates (or checks) the encoder fingerprints pinned in Tests/QuantsTests/PinnedEncodingTests.swift.

Oracles, both independent of this repository's Swift code:
  ggml     ggml's own C reference quantizers, quantize_row_<type>_ref from ggml-quants.c, called through
           ctypes in the libggml-base.so that the PyPI package libggml-python ships
           (`pip install libggml-python`, written against 0.20.2.post1). That build targets baseline x86-64:
           no FMA instructions, so no multiply-add is contracted (a -march=native build contracts them and
           then differs in some K-quant blocks, since the scale search compares nearly equal errors).
           This is the oracle for every pinned type.
  gguf-py  gguf.quants.quantize (`pip install gguf numpy`, written against gguf 0.19), a numpy port of
           ggml's reference quantizers for Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (it has none for the K-quants
           and Q8_K). Where it exists it must give the same bytes as ggml; the script stops if not.

Inputs (as the test builds them):
  varied    variedTestData(superBlocks: 48, seed: 2024) of Tests/QuantsTests/Helpers.swift, reproduced here
            in float32 step by step (SplitMix64 and IEEE arithmetic only, so the bits are the same)
  fixture   Tests/Fixtures/quants/quantize_input.f32
The fingerprint is 64-bit FNV-1a of the encoded bytes.

Usage:
  python3 Tools/scripts/gen_pinned_encodings.py            # prints the Swift `pins` table
  python3 Tools/scripts/gen_pinned_encodings.py --check    # compares with the test file; exit 1 on a difference
  ... [--lib /path/to/libggml-base.so]
"""

import argparse
import ctypes
import os
import re
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TEST_FILE = os.path.join(ROOT, "Tests", "QuantsTests", "PinnedEncodingTests.swift")
FIXTURE = os.path.join(ROOT, "Tests", "Fixtures", "quants", "quantize_input.f32")

# (Swift case name, ggml function suffix, gguf-py type name or None, block size, block bytes)
TYPES = [
    ("q4_0", "q4_0", "Q4_0", 32, 18),
    ("q4_1", "q4_1", "Q4_1", 32, 20),
    ("q5_0", "q5_0", "Q5_0", 32, 22),
    ("q5_1", "q5_1", "Q5_1", 32, 24),
    ("q8_0", "q8_0", "Q8_0", 32, 34),
    ("q2_K", "q2_K", None, 256, 84),
    ("q3_K", "q3_K", None, 256, 110),
    ("q4_K", "q4_K", None, 256, 144),
    ("q5_K", "q5_K", None, 256, 176),
    ("q6_K", "q6_K", None, 256, 210),
    ("q8_K", "q8_K", None, 256, 292),
]

M64 = (1 << 64) - 1
F = np.float32


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & M64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def next_float(self):
        # Float(next() >> 40) / Float(1 << 23) - 1, each step rounded to float32
        return F(F(self.next() >> 40) / F(1 << 23)) - F(1)


def varied_test_data(super_blocks, seed):
    """Tests/QuantsTests/Helpers.swift variedTestData, operation for operation in float32."""
    rng = SplitMix64(seed)
    scales = [F(1e-4), F(3e-3), F(0.05), F(1), F(7), F(300)]
    out = []
    for b in range(super_blocks):
        s = scales[b % len(scales)]
        offset = F(F(rng.next_float() * F(2)) * s)
        for _ in range(256):
            kind = b % 4
            if kind == 0:
                v = F(0)
                for _ in range(12):
                    v = F(v + F(F(rng.next_float() + F(1)) / F(2)))
                v = F(F(v - F(6)) * s)
            elif kind == 1:
                v = F(F(rng.next_float() * s) + offset)
            elif kind == 2:
                u = rng.next_float()
                v = F(F(rng.next_float() * s) / F(abs(u) + F(0.05)))
            else:
                v = F(F(rng.next_float() * F(10)) * s) if rng.next() % 16 == 0 else F(0)
            out.append(v)
    return np.array(out, dtype=np.float32)


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def find_lib(explicit):
    if explicit:
        return explicit
    try:
        import libggml  # the libggml-python package
    except ImportError:
        sys.exit("libggml-python is not installed: pip install libggml-python (or pass --lib)")
    base = os.path.dirname(libggml.__file__)
    for sub in ("lib64", "lib"):
        path = os.path.join(base, sub, "libggml-base.so")
        if os.path.exists(path):
            return path
    sys.exit(f"no libggml-base.so under {base}")


def ggml_quantize(lib, suffix, x, block, block_bytes):
    fn = getattr(lib, f"quantize_row_{suffix}_ref")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.zeros(len(x) // block * block_bytes, dtype=np.uint8)
    fn(x.ctypes.data, out.ctypes.data, len(x))
    return out.tobytes()


def gguf_quantize(name, x):
    from gguf import quants
    from gguf.constants import GGMLQuantizationType as T
    return quants.quantize(x.reshape(1, -1), getattr(T, name)).tobytes()


def pinned_in_test_file():
    text = open(TEST_FILE).read()
    pins = {}
    for m in re.finditer(r"\(\.(\w+), (0x[0-9a-f_]+), (0x[0-9a-f_]+)[,)]", text):
        pins[m.group(1)] = (int(m.group(2).replace("_", ""), 16), int(m.group(3).replace("_", ""), 16))
    return pins


def swift_hex(v):
    h = f"{v:016x}"
    return "0x" + "_".join(h[i:i + 4] for i in range(0, 16, 4))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the pins in the test file")
    ap.add_argument("--lib", help="path of libggml-base.so (default: the libggml-python package's)")
    args = ap.parse_args()
    lib = ctypes.CDLL(find_lib(args.lib))
    inputs = {"varied": varied_test_data(48, 2024), "fixture": np.fromfile(FIXTURE, dtype="<f4")}
    results = {}
    for swift, suffix, gguf_name, block, block_bytes in TYPES:
        prints = []
        for label, x in inputs.items():
            encoded = ggml_quantize(lib, suffix, x, block, block_bytes)
            if gguf_name is not None and gguf_quantize(gguf_name, x) != encoded:
                sys.exit(f"{swift} on {label}: gguf-py and ggml's C reference disagree")
            prints.append(fnv1a(encoded))
        results[swift] = tuple(prints)
    if args.check:
        pinned = pinned_in_test_file()
        bad = [t for t in results if pinned.get(t) != results[t]]
        for t in bad:
            print(f"{t}: pinned {tuple(map(swift_hex, pinned.get(t, (0, 0))))}, oracle {tuple(map(swift_hex, results[t]))}")
        if set(pinned) != set(results):
            print(f"pinned types {sorted(pinned)} differ from the oracle's {sorted(results)}")
            bad.append("types")
        print("all pins match the oracles" if not bad else f"{len(bad)} pin(s) differ")
        sys.exit(1 if bad else 0)
    for swift, _, gguf_name, _, _ in TYPES:
        varied, fixture = results[swift]
        oracle = "ggmlAndGGUFPy" if gguf_name else "ggml"
        print(f"        (.{swift}, {swift_hex(varied)}, {swift_hex(fixture)}, {oracle}),")


if __name__ == "__main__":
    main()
