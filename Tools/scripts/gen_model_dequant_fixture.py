#!/usr/bin/env python3
"""Writes Tests/Fixtures/gguf/smollm2-dequant.json: gguf-py's dequantization of selected rows of the
default model's tensors (as float32 bit patterns) and the float64 sum of each whole tensor, the oracle
for dequantizing the real model's Q8_0 / Q4_1 / F32 tensors.

usage: Tools/scripts/gen_model_dequant_fixture.py [MODEL]
"""
import json, os, subprocess, sys
import numpy as np
import gguf

here = os.path.dirname(os.path.abspath(__file__))
model = sys.argv[1] if len(sys.argv) > 1 else subprocess.check_output([os.path.join(here, "bootstrap.sh")], text=True).strip()
r = gguf.GGUFReader(model)
out = {"tensors": []}
for name, rows in [("token_embd.weight", [0, 1, 2, 1000, 30000, 49151]),
                   ("blk.0.attn_q.weight", [0, 300, 575]),
                   ("blk.29.ffn_down.weight", [0, 575]),
                   ("output_norm.weight", [0])]:
    t = next(t for t in r.tensors if t.name == name)
    d = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    d = d.reshape(-1, int(t.shape[0]))
    out["tensors"].append({
        "name": name, "type": t.tensor_type.name,
        "rows": {str(i): [int(b) for b in d[i].view(np.uint32)] for i in rows},
        "sum": float(d.astype(np.float64).sum()),
        "sum_abs": float(np.abs(d.astype(np.float64)).sum()),
    })
path = os.path.join(here, "..", "..", "Tests", "Fixtures", "gguf", "smollm2-dequant.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
print(path, os.path.getsize(path), "bytes")
