#!/usr/bin/env python3
"""Sampling fixtures for Tests/LlamaTests/SamplingTests.swift -> Tests/Fixtures/sampling/distributions.json.

For fixed logit vectors and sampler settings, numpy computes the distribution the sampler must draw
from, straight from the definitions on whole float64 arrays (llama.cpp's chain order: penalties,
top-k, top-p, min-p, temperature):
  penalties   for a token seen c > 0 times in the window: l <- l*r if l <= 0 else l/r; l <- l - c*f - p
  top-k       the k largest logits (ties: lower id first)
  top-p       softmax at temperature 1, sorted descending; the shortest prefix whose sum is >= top_p
  min-p       softmax at temperature 1; keep p_i >= min_p * max_j p_j
  temperature softmax(l / T) over the survivors
(both top-p and min-p keep at least min_keep tokens). Cases whose cut lies within 1e-5 of a threshold
are rejected so that float32-vs-float64 rounding cannot move a boundary. Also writes reference
outputs of splitmix64 and xoshiro256** (pure-integer algorithms; splitmix64 is checked against its
published vector first).

Usage: gen_sampling_fixtures.py    (needs numpy)
"""
import json
import os

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "sampling", "distributions.json")
MASK = (1 << 64) - 1
EPS = 1e-5


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


def xoshiro256ss(seed, count):
    s, state = [], seed
    for _ in range(4):
        state, value = splitmix64(state)
        s.append(value)
    out = []
    for _ in range(count):
        out.append((rotl((s[1] * 5) & MASK, 7) * 9) & MASK)
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def reference(logits, p):
    l = logits.astype(np.float64)
    window = p["history"] if p["window"] < 0 else p["history"][-p["window"]:] if p["window"] > 0 else []
    for token in set(window):
        c = window.count(token)
        l[token] = l[token] * p["repeat"] if l[token] <= 0 else l[token] / p["repeat"]
        l[token] -= c * p["frequency"] + p["presence"]
    ids = np.arange(len(l))
    # Order: larger logit first, then smaller id (lexsort sorts by the last key first).
    order = np.lexsort((ids, -l))
    ids, l = ids[order], l[order]
    keep = max(1, p["min_keep"])
    if 0 < p["top_k"] < len(l):
        ids, l = ids[: p["top_k"]], l[: p["top_k"]]
    if p["top_p"] < 1:
        cum = np.cumsum(softmax(l))
        assert np.all(np.abs(cum - p["top_p"]) > EPS), "top-p boundary too close"
        cut = max(int(np.argmax(cum >= p["top_p"])) + 1 if cum[-1] >= p["top_p"] else len(l), keep)
        ids, l = ids[:cut], l[:cut]
    if p["min_p"] > 0:
        probs = softmax(l)
        ratio = probs / probs.max()
        assert np.all(np.abs(ratio - p["min_p"]) > EPS), "min-p boundary too close"
        mask = ratio >= p["min_p"]
        if mask.sum() < keep:
            mask = np.arange(len(l)) < keep
        ids, l = ids[mask], l[mask]
    probs = softmax(l / p["temperature"])
    order = np.lexsort((ids, -probs))
    return [int(i) for i in ids[order]], [float(x) for x in probs[order]]


def params(**kw):
    p = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, min_keep=1, repeat=1.0, frequency=0.0, presence=0.0,
             window=0, history=[])
    p.update(kw)
    return p


def main():
    # The published splitmix64 sequence for seed 1234567.
    state, seq = 1234567, []
    for _ in range(5):
        state, value = splitmix64(state)
        seq.append(value)
    assert seq == [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431,
                   16408922859458223821], seq

    rng = np.random.default_rng(20240611)

    def vector(n, scale):
        # Three decimals: the decimal text parses to the same float32 in numpy and in Swift.
        return np.round(rng.normal(0, scale, n), 3).astype(np.float32)

    logits = {
        "small": vector(32, 2.0),
        "peaked": np.concatenate([np.array([6.5, 5.25, 4.0], np.float32), vector(61, 1.0)]),
        "negative": (vector(40, 1.5) - 3).astype(np.float32),
        "flat2048": vector(2048, 0.35),
        "wide1000": vector(1000, 3.0),
    }
    history = [int(x) for x in rng.integers(0, 32, 24)] + [3, 3, 3, 7]
    cases = [
        ("temperature-only", "small", params(temperature=0.7)),
        ("top-k", "small", params(top_k=5)),
        ("top-k-hot", "small", params(top_k=8, temperature=1.6)),
        ("top-p", "small", params(top_p=0.8)),
        ("min-p", "small", params(min_p=0.07)),
        ("llama.cpp-defaults", "small", params(top_k=40, top_p=0.95, min_p=0.05, temperature=0.8)),
        ("chain", "peaked", params(top_k=20, top_p=0.9, min_p=0.02, temperature=0.6)),
        ("min-keep", "peaked", params(top_p=0.3, min_p=0.5, min_keep=4)),
        ("repeat-penalty", "negative", params(repeat=1.3, window=16, history=[int(x) for x in rng.integers(0, 40, 30)])),
        ("all-penalties", "small", params(repeat=1.15, frequency=0.2, presence=0.35, window=64, history=history)),
        ("penalty-window-all", "small", params(repeat=1.5, window=-1, history=history, top_k=10)),
        ("nucleus-beyond-256", "flat2048", params(top_p=0.3)),
        ("top-k-large", "flat2048", params(top_k=700, top_p=0.5, temperature=1.3)),
        ("min-p-unsorted", "wide1000", params(min_p=0.01, temperature=0.9)),
        ("top-p-unsorted-wide", "wide1000", params(top_p=0.97)),
    ]
    out_cases = []
    for name, vec, p in cases:
        ids, probs = reference(logits[vec], p)
        out_cases.append({"name": name, "logits": vec, "params": p, "ids": ids,
                          "probabilities": [float(f"{x:.12g}") for x in probs]})
        print(f"{name}: {len(ids)} survivors")
    seeds = [0, 1, 42, 0xDEADBEEF, MASK]
    document = {
        "generator": "Tools/scripts/gen_sampling_fixtures.py",
        "logits": {k: [float(f"{x:.3f}") for x in v] for k, v in logits.items()},
        "cases": out_cases,
        "xoshiro256starstar": [{"seed": str(s), "outputs": [str(x) for x in xoshiro256ss(s, 6)]} for s in seeds],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(document, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
