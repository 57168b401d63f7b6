#!/usr/bin/env python3
"""Zero-shot (and optional k-shot) rank-classification baselines for an example task.

Scores each split with (a) the template only, (b) the task's hard prompt prepended as text, and
optionally (c) k demonstrations per class from the train split prepended as text, on the GGUF
model loaded through transformers in float32. Same scoring rule as peft_train.py / ours.

  python3 Tools/scripts/zero_shot.py --task examples/name-language --threads 2 --shots 2 \
      --json /tmp/zero_shot.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sp_common as C  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True)
    ap.add_argument("--model", "-m", default=C.DEFAULT_MODEL)
    ap.add_argument("--threads", "-t", type=int, default=2)
    ap.add_argument("--splits", default="eval,test")
    ap.add_argument("--shots", type=int, default=0, help="demonstrations per class for a k-shot row (0 = skip)")
    ap.add_argument("--shots-splits", default="eval", help="splits scored k-shot (long contexts: slow)")
    ap.add_argument("--prefix", action="append", default=[], help="extra hard prompt(s) to score")
    ap.add_argument("--json")
    args = ap.parse_args()
    task = C.load_task(args.task)
    model, tok = C.load_model(args.model, threads=args.threads)
    prefixes = [("none", ""), ("hard", task["hard_prompt"])] + [(f"prefix{i}", p) for i, p in enumerate(args.prefix)]
    if args.shots:
        train = C.read_jsonl(os.path.join(args.task, "train.jsonl"))
        rng = random.Random(0)
        demo = []
        for choice in task["choices"]:
            demo += rng.sample([r for r in train if r["output"] == choice], args.shots)
        rng.shuffle(demo)
        text = "".join(C.render(task["template"], r["input"]) + r["output"] + "\n\n" for r in demo)
        prefixes.append((f"{args.shots * len(task['choices'])}-shot", text))
    results = {}
    for split in args.splits.split(","):
        rows = C.read_jsonl(os.path.join(args.task, f"{split}.jsonl"))
        for name, prefix in prefixes:
            if name.endswith("-shot") and split not in args.shots_splits.split(","):
                continue
            t0 = time.perf_counter()
            r = C.rank_classify(model, tok, rows, task["template"], prefix)
            results[f"{split}/{name}"] = {"accuracy": r["accuracy"], "n": r["n"], "prefix": prefix,
                                          "confusion": r["confusion"]}
            print(f"{split:5s} {name:8s} acc {r['accuracy']:.3f} (n={r['n']}, "
                  f"{time.perf_counter() - t0:.0f}s) {r['confusion']}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
