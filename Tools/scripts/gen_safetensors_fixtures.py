#!/usr/bin/env python3
"""Regenerates (or verifies) the safetensors fixtures under Tests/Fixtures/safetensors/.

Oracles: the reference `safetensors` library (Rust core, Python bindings) and `ml_dtypes`
(bfloat16 and float8 decoding). Requires: pip install safetensors ml_dtypes numpy

    python3 Tools/scripts/gen_safetensors_fixtures.py            # write the fixtures
    python3 Tools/scripts/gen_safetensors_fixtures.py --verify   # check the Swift-written file

Files:
  reference.safetensors   written by safetensors.numpy.save_file: every dtype we support,
                          extreme values, all 256 float8 bit patterns, an empty and a 0-d
                          tensor, one metadata entry (the library orders several metadata
                          entries randomly, one keeps the bytes reproducible).
  reference.json          what the library reads back: header length, per tensor dtype,
                          shape, data_offsets, raw bytes (hex) and, for float dtypes, the
                          float32 value of each element as its bit pattern (via ml_dtypes).
  written_by_swift.safetensors
                          produced by our SafetensorsWriter (see SafetensorsReferenceTests);
                          --verify loads it with the reference library and checks every
                          tensor and the metadata against reference.json.
"""
import json
import os
import sys

import ml_dtypes
import numpy as np
import safetensors
from safetensors import safe_open
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "Tests", "Fixtures", "safetensors"))

FLOAT_DTYPES = {"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"}


def reference_tensors():
    rng = np.random.default_rng(1234)
    f16 = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 6e-8, np.inf, -np.inf, np.nan], dtype=np.float16)
    f32 = np.concatenate([
        np.array([0.0, -0.0, 1.0, 3.4028235e38, 1e-45, -np.inf, np.nan], dtype=np.float32),
        rng.standard_normal(9).astype(np.float32),
    ]).reshape(4, 4)
    return {
        "bool": np.array([[True, False, True], [False, False, True]]),
        "u8": np.array([0, 1, 127, 128, 255], dtype=np.uint8),
        "i8": np.array([[-128, -1], [0, 127]], dtype=np.int8),
        "u16": np.array([0, 1, 65535], dtype=np.uint16),
        "i16": np.array([-32768, -1, 32767], dtype=np.int16),
        "u32": np.array([0, 1, 4294967295], dtype=np.uint32),
        "i32": np.array([-2147483648, -1, 2147483647], dtype=np.int32),
        "u64": np.array([0, 1, 18446744073709551615], dtype=np.uint64),
        "i64": np.array([-9223372036854775808, -1, 9223372036854775807], dtype=np.int64),
        "f16": f16,
        "bf16": np.array([0.0, -0.0, 1.0, -3.140625, 3.389531e38, 9.2e-41, np.inf, np.nan],
                         dtype=np.float32).astype(ml_dtypes.bfloat16),
        "f32": f32,
        "f64": np.array([0.0, -0.0, 1.0 / 3.0, 1e308, 5e-324, -np.inf], dtype=np.float64),
        "f8_e4m3": np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).reshape(16, 16),
        "f8_e5m2": np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e5m2).reshape(16, 16),
        "empty": np.zeros((2, 0), dtype=np.float32),
        "scalar": np.array(1.5, dtype=np.float32),
        "model.layers.0.weight": rng.standard_normal((3, 5)).astype(np.float32),
    }


METADATA = {"format": "pt"}


def float_bits(dtype, data):
    """float32 bit patterns of each element, decoded by numpy / ml_dtypes."""
    np_dtype = {
        "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F32": np.float32, "F64": np.float64,
        "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2,
    }[dtype]
    with np.errstate(over="ignore"):  # F64 values past the float32 range become inf, as intended
        values = np.frombuffer(bytes(data), dtype=np_dtype).astype(np.float32)
    return [int(b) for b in values.view(np.uint32)]


def dump(path):
    raw = open(path, "rb").read()
    header_length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_length])
    entries = []
    # safetensors.deserialize runs the reference validation and returns the raw tensor bytes.
    for name, info in sorted(safetensors.deserialize(raw), key=lambda item: item[0]):
        entry = {
            "name": name,
            "dtype": info["dtype"],
            "shape": list(info["shape"]),
            "data_offsets": header[name]["data_offsets"],
            "hex": bytes(info["data"]).hex(),
        }
        if info["dtype"] in FLOAT_DTYPES:
            entry["float_bits"] = float_bits(info["dtype"], info["data"])
        entries.append(entry)
    with safe_open(path, framework="np") as f:
        metadata = f.metadata()
    return {"header_length": header_length, "file_size": len(raw), "metadata": metadata, "tensors": entries}


def generate():
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "reference.safetensors")
    save_file(reference_tensors(), path, metadata=METADATA)
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(dump(path), f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes) and reference.json")


def verify():
    """Checks that the reference library reads the Swift-written file as the reference tensors."""
    path = os.path.join(OUT, "written_by_swift.safetensors")
    expected = json.load(open(os.path.join(OUT, "reference.json")))
    got = dump(path)
    failures = []
    want = {t["name"]: t for t in expected["tensors"]}
    have = {t["name"]: t for t in got["tensors"]}
    if set(want) != set(have):
        failures.append(f"tensor names differ: {sorted(set(want) ^ set(have))}")
    for name in sorted(set(want) & set(have)):
        for field in ("dtype", "shape", "hex"):
            if want[name][field] != have[name][field]:
                failures.append(f"{name}: {field} differs")
    # The Swift file carries the reference metadata plus one extra entry (two keys, sorted).
    if got["metadata"] != dict(expected["metadata"], writer="SoftPromptKit"):
        failures.append(f"metadata differs: {got['metadata']}")
    # numpy-native dtypes also load through the high-level numpy API.
    with safe_open(path, framework="np") as f:
        for name in f.keys():
            if want[name]["dtype"] in ("BF16", "F8_E4M3", "F8_E5M2"):
                continue
            array = f.get_tensor(name)
            if array.tobytes().hex() != want[name]["hex"] or list(array.shape) != want[name]["shape"]:
                failures.append(f"{name}: numpy load differs")
    raw = open(path, "rb").read()
    header_length = int.from_bytes(raw[:8], "little")
    if (8 + header_length) % 8 != 0:
        failures.append("header not padded to a multiple of 8")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"OK: safetensors {safetensors.__version__} reads {os.path.basename(path)} "
          f"({len(raw)} bytes, {len(have)} tensors) identically to reference.json")


if __name__ == "__main__":
    verify() if "--verify" in sys.argv else generate()
