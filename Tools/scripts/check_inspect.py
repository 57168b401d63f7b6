#!/usr/bin/env python3
"""Checks `softprompt inspect` on a GGUF model against the gguf Python package (run in a dev session):
metadata values, the tensor table, and `--tensor NAME --out` (dequantized and --raw) for a few tensors.

usage: Tools/scripts/check_inspect.py [MODEL] [--bin PATH] [--tensors a,b,c]
"""
import argparse, json, os, subprocess, sys, tempfile
import numpy as np
import gguf

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
ap = argparse.ArgumentParser()
ap.add_argument("model", nargs="?")
ap.add_argument("--bin", default=os.path.join(root, ".build", "release", "softprompt"))
ap.add_argument("--tensors", default="token_embd.weight,blk.0.attn_q.weight,output_norm.weight")
a = ap.parse_args()
model = a.model or subprocess.check_output([os.path.join(here, "bootstrap.sh")], text=True).strip()

ours = json.loads(subprocess.check_output([a.bin, "inspect", model, "--json", "--full"], text=True))
r = gguf.GGUFReader(model)
failures = 0

def check(ok, what):
    global failures
    if not ok:
        failures += 1
        print("MISMATCH:", what)

fields = {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}
check(list(fields) == list(ours["metadata"]), "metadata keys/order")
for k, f in fields.items():
    v = f.contents()
    o = ours["metadata"][k]
    if isinstance(o, dict) and o.get("type") == "array":
        check(o["count"] == len(v), f"{k}: count")
        if all(isinstance(x, float) for x in v):
            check(np.array_equal(np.float32(o["values"]), np.float32(v)), f"{k}: values")
        else:
            check(o["values"] == list(v), f"{k}: values")
    elif isinstance(v, float):
        check(np.float32(o) == np.float32(v), f"{k}: {o} vs {v}")
    else:
        check(o == v, f"{k}: {o!r} vs {v!r}")
check(len(ours["tensors"]) == len(r.tensors), "tensor count")
for t, o in zip(r.tensors, ours["tensors"]):
    same = (o["name"] == t.name and o["type"] == t.tensor_type.name and o["shape"] == [int(x) for x in t.shape]
            and o["bytes"] == int(t.n_bytes) and o["offset"] == int(t.data_offset))
    check(same, f"tensor {t.name}")

by_name = {t.name: t for t in r.tensors}
with tempfile.TemporaryDirectory() as tmp:
    for name in a.tensors.split(","):
        t = by_name[name]
        out = os.path.join(tmp, "x.npy")
        subprocess.check_call([a.bin, "inspect", model, "--tensor", name, "--out", out], stderr=subprocess.DEVNULL)
        mine = np.load(out)
        ref = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        check(mine.shape == ref.shape, f"{name}: shape {mine.shape} vs {ref.shape}")
        check(mine.tobytes() == ref.tobytes(), f"{name}: dequantized values not bit-identical")
        subprocess.check_call([a.bin, "inspect", model, "--tensor", name, "--out", out, "--raw"], stderr=subprocess.DEVNULL)
        raw = np.load(out)
        check(raw.tobytes() == np.asarray(t.data).tobytes() and raw.shape == np.asarray(t.data).shape,
              f"{name}: --raw differs from gguf-py's stored data {raw.shape} vs {np.asarray(t.data).shape}")
        print(f"{name}: {t.tensor_type.name} {list(mine.shape)} bit-identical to gguf-py (dequantized and raw)"
              if failures == 0 else f"{name}: checked")
print(f"{len(fields)} metadata keys, {len(r.tensors)} tensors compared; {failures} mismatches")
sys.exit(1 if failures else 0)
