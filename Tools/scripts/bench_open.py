#!/usr/bin/env python3
"""Time to open and index a GGUF model: `softprompt bench --suite open` beside gguf-py's GGUFReader,
measured in one run on the same file with a warm page cache (median of N runs each).

usage: Tools/scripts/bench_open.py [MODEL] [--runs N] [--bin PATH]
"""
import argparse, json, os, statistics, subprocess, sys, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))

ap = argparse.ArgumentParser()
ap.add_argument("model", nargs="?")
ap.add_argument("--runs", type=int, default=7)
ap.add_argument("--bin", default=os.path.join(root, ".build", "release", "softprompt"))
args = ap.parse_args()
model = args.model or subprocess.check_output([os.path.join(here, "bootstrap.sh")], text=True).strip()

with open(model, "rb") as f:  # warm the page cache
    while f.read(1 << 24):
        pass

ours = json.loads(subprocess.check_output(
    [args.bin, "bench", "--suite", "open", "--runs", str(args.runs), "--json", "-m", model], text=True))

import gguf  # noqa: E402  (pip install gguf)
times = []
for _ in range(args.runs):
    t = time.perf_counter()
    r = gguf.GGUFReader(model)
    n = len(r.tensors)
    times.append(time.perf_counter() - t)
    del r
py = statistics.median(times)
print(f"model: {model}")
print(f"softprompt open+index: median {ours['median_ms']:.3f} ms over {ours['runs']} runs "
      f"({ours['tensors']} tensors, {ours['metadata_keys']} keys)")
print(f"gguf-py GGUFReader:    median {py * 1000:.1f} ms over {args.runs} runs ({n} tensors)")
print(f"ratio: gguf-py / softprompt = {py * 1000 / ours['median_ms']:.0f}x")
