#!/usr/bin/env python3
"""Regenerates Tests/Fixtures/llama/: exact float64 reference logits (Tools/scripts/exact_reference.py)
for the default model on a few prompts, one of them with 8 random input embeddings prepended.

A full logit row is 49152 floats, too large to commit for every position, so each position keeps: the
top-32 ids and values, the values at 256 fixed probe ids, and the row's L2 norm, mean and logsumexp.
Greedy continuations (32 tokens) with the top-2 margin at every step are stored for two prompts.
Token ids come from llama.cpp's tokenizer (llama-cpp-python, vocab only).

usage: Tools/scripts/gen_llama_fixtures.py [MODEL]
"""
import json, os, subprocess, sys
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from exact_reference import Reference  # noqa: E402

model = sys.argv[1] if len(sys.argv) > 1 else subprocess.check_output([os.path.join(here, "bootstrap.sh")], text=True).strip()
out_dir = os.path.join(here, "..", "..", "Tests", "Fixtures", "llama")
os.makedirs(out_dir, exist_ok=True)

import llama_cpp  # noqa: E402
tok = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
texts = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "<|im_start|>user\nWhat is 17 times 23?<|im_end|>\n<|im_start|>assistant\n",
    "Once upon a time, in a small village by the sea, there lived",
    "Les chats et les chiens sont des animaux",
]
prompts = [tok.tokenize(t.encode(), add_bos=False, special=True) for t in texts]

ref = Reference(model)
rng = np.random.default_rng(1234)
V = ref.out.shape[0]
probe = sorted(rng.choice(V, 256, replace=False).tolist())
emb = (rng.standard_normal((8, ref.width)) * 0.05).astype(np.float32)  # token-embedding scale
np.save(os.path.join(out_dir, "embeddings8.npy"), emb)

def summarize(logits):
    rows = []
    for row in logits.astype(np.float64):
        top = np.argsort(row)[::-1][:32]
        m = row.max()
        rows.append({
            "top_ids": [int(i) for i in top], "top_values": [float(row[i]) for i in top],
            "probe_values": [float(row[i]) for i in probe],
            "norm": float(np.linalg.norm(row)), "mean": float(row.mean()),
            "logsumexp": float(m + np.log(np.exp(row - m).sum())),
        })
    return rows

cases = []
for name, text, ids in zip(["france", "code", "chat", "story", "french"], texts, prompts):
    cases.append({"name": name, "text": text, "ids": ids, "embeddings": None,
                  "positions": summarize(ref.forward(ids))})
    print(name, len(ids), "tokens", file=sys.stderr)
cases.append({"name": "france+embeddings8", "text": texts[0], "ids": prompts[0], "embeddings": "embeddings8.npy",
              "positions": summarize(ref.forward(prompts[0], emb))})

greedy = []
for idx in (0, 3):
    ids, outp, margins = list(prompts[idx]), [], []
    for _ in range(32):
        row = ref.forward(ids + outp)[-1]
        top = np.argsort(row)[::-1][:2]
        outp.append(int(top[0]))
        margins.append(float(row[top[0]] - row[top[1]]))
    greedy.append({"name": cases[idx]["name"], "ids": ids, "tokens": outp, "top2_margins": margins})
    print("greedy", cases[idx]["name"], file=sys.stderr)

def rounded(x):  # 1e-5 is far below the tests' 0.02 tolerance and keeps the file small
    if isinstance(x, float):
        return round(x, 5)
    if isinstance(x, list):
        return [rounded(y) for y in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x

with open(os.path.join(out_dir, "smollm2-exact.json"), "w") as f:
    json.dump(rounded({"model_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
               "probe_ids": probe, "cases": cases, "greedy": greedy}), f, separators=(",", ":"))
