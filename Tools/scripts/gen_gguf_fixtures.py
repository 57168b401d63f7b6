#!/usr/bin/env python3
"""Regenerates the GGUF reference fixtures under Tests/Fixtures/gguf/ with gguf-py (pip: gguf, numpy).

  pywriter.gguf   a small file written by gguf.GGUFWriter: every metadata value type, arrays of every
                  element type (strings included, one not valid UTF-8), tensors of several types,
                  custom alignment 64
  pywriter.txt    what gguf.GGUFReader reads back from it (every value, every tensor byte)
  smollm2-135m-instruct-q4_1.txt
                  what gguf.GGUFReader reads from the default model (when present): every tensor's
                  name, type, shape and offsets; scalar metadata; array lengths with first/last
                  elements

Dump format, one record per line, fields separated by tabs:
  version <n> / alignment <n> / data_offset <n> / tensor_count <n> / kv_count <n>
  kv <key> <TYPE> <value>
  array <key> <ELEMENT_TYPE> <count> <v0> <v1> ...           (every element)
  arraysummary <key> <ELEMENT_TYPE> <count> <first> <last>   (model dump)
  tensor <name> <TYPE> <ne0,ne1,...> <offset> <absolute offset> <bytes> [<data hex>]
Values: integers in decimal, booleans 0/1, floats as the hex of their IEEE bits (0x...), strings
as the hex of their raw bytes (possibly empty).

Usage: python3 Tools/scripts/gen_gguf_fixtures.py [model.gguf]
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGUFValueType as VT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "gguf")
DEFAULT_MODEL = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
    "softpromptkit", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def write_fixture(path):
    w = gguf.GGUFWriter(path, arch="fixture")  # adds general.architecture first
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_float32("t.f32", 3.14159)
    w.add_bool("t.true", True)
    w.add_bool("t.false", False)
    w.add_string("t.str", "h\u00e9llo \u2713 \U0001F600")
    w.add_key_value("t.str.empty", "", VT.STRING)
    w.add_key_value("t.str.bytes", b"\xff\xfe not utf-8 \xc3", VT.STRING)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62) - 7)
    w.add_float64("t.f64", 2.718281828459045)
    w.add_float32("t.f32.negzero", -0.0)
    w.add_float32("t.f32.inf", float("inf"))
    w.add_float64("t.f64.tiny", 5e-324)
    arrays = [
        ("a.u8", [0, 1, 255], VT.UINT8),
        ("a.i8", [-128, 0, 127], VT.INT8),
        ("a.u16", [0, 65535, 300], VT.UINT16),
        ("a.i16", [-32768, 32767, -1], VT.INT16),
        ("a.u32", [0, 4294967295, 7], VT.UINT32),
        ("a.i32", [-2147483648, 2147483647, 0, 5], VT.INT32),
        ("a.f32", [1.5, -2.25, 1e-8, float("-inf")], VT.FLOAT32),
        ("a.bool", [True, False, True], VT.BOOL),
        ("a.str", ["a", "", "\u00fc\u00df", "\U0001F600", b"\x80raw"], VT.STRING),
        ("a.u64", [0, 2**64 - 1], VT.UINT64),
        ("a.i64", [-(2**63), 2**63 - 1, 42], VT.INT64),
        ("a.f64", [0.1, -1e300], VT.FLOAT64),
        ("a.single", [9], VT.UINT32),
    ]
    for key, values, sub in arrays:
        w.add_key_value(key, values, VT.ARRAY, sub_type=sub)

    rng = np.random.default_rng(1234)
    w.add_tensor("f32.vec", rng.standard_normal(5).astype(np.float32))
    w.add_tensor("f16.mat", rng.standard_normal((3, 4)).astype(np.float16))
    w.add_tensor("i8.cube", rng.integers(-128, 128, (2, 3, 4)).astype(np.int8))
    w.add_tensor("i32.4d", rng.integers(-1000, 1000, (2, 1, 3, 2)).astype(np.int32))
    w.add_tensor("f64.one", np.array([1.0 / 3.0]))
    # Quantized layouts as raw bytes: the byte shape (rows, bytes per row) becomes (rows, elements).
    w.add_tensor("q8_0.raw", rng.integers(0, 256, (2, 34)).astype(np.uint8),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("q4_1.raw", rng.integers(0, 256, (3, 40)).astype(np.uint8),
                 raw_dtype=gguf.GGMLQuantizationType.Q4_1)
    w.add_tensor("empty.rows", np.zeros((0, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def scalar_text(part, vtype):
    if vtype in (VT.FLOAT32, VT.FLOAT64):
        return "0x" + bytes(part.tobytes()[::-1]).hex()
    if vtype == VT.STRING:
        return bytes(part.tobytes()).hex()
    return str(int(part[0]))


def dump(path, out, full):
    r = gguf.GGUFReader(path)
    lines = [
        f"version\t{int(r.fields['GGUF.version'].parts[-1][0])}",
        f"alignment\t{r.alignment}",
        f"data_offset\t{r.data_offset}",
        f"tensor_count\t{len(r.tensors)}",
        f"kv_count\t{int(r.fields['GGUF.kv_count'].parts[-1][0])}",
    ]
    for key, field in r.fields.items():
        if key.startswith("GGUF."):
            continue
        vtype = field.types[0]
        if vtype == VT.ARRAY:
            sub = field.types[1] if len(field.types) > 1 else VT.UINT8
            values = [scalar_text(field.parts[i], sub) for i in field.data]
            if full:
                lines.append("\t".join(["array", key, sub.name, str(len(values))] + values))
            else:
                first = values[0] if values else ""
                last = values[-1] if values else ""
                lines.append("\t".join(["arraysummary", key, sub.name, str(len(values)), first, last]))
        else:
            lines.append("\t".join(["kv", key, vtype.name, scalar_text(field.parts[field.data[0]], vtype)]))
    for t in r.tensors:
        relative = int(t.field.parts[-1][0])
        record = ["tensor", t.name, t.tensor_type.name, ",".join(str(int(d)) for d in t.shape),
                  str(relative), str(int(t.data_offset)), str(int(t.n_bytes))]
        if full:
            record.append(bytes(r.data[t.data_offset:t.data_offset + t.n_bytes]).hex())
        lines.append("\t".join(record))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out} ({len(lines)} records)")


def main():
    os.makedirs(OUT, exist_ok=True)
    fixture = os.path.join(OUT, "pywriter.gguf")
    write_fixture(fixture)
    print(f"wrote {fixture} ({os.path.getsize(fixture)} bytes)")
    dump(fixture, os.path.join(OUT, "pywriter.txt"), full=True)
    model = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    if os.path.exists(model):
        dump(model, os.path.join(OUT, "smollm2-135m-instruct-q4_1.txt"), full=False)
    else:
        print(f"{model} not found; model dump not regenerated")


if __name__ == "__main__":
    main()
