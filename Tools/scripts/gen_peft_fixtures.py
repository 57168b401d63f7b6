#!/usr/bin/env python3
"""Regenerates Tests/Fixtures/peft/: a real PEFT prompt-tuning adapter and the logits PEFT gives with it.

1. A short PEFT run (Tools/scripts/peft_train.py) on the default model and examples/name-language
   saves `adapter/` (adapter_config.json + adapter_model.safetensors, as PEFT writes them).
2. The adapter is loaded back with `PeftModel.from_pretrained(base, adapter)` and run on the first
   inputs of the task's test split (tokens of the rendered template, no special tokens, virtual
   tokens first). `logits.json` keeps, for each input, the last-position logits at 512 token ids
   (the 256 largest and every 192nd id), the base model's logits at the same ids (no prompt: a
   control showing the prompt matters), and the top 10 ids.

ConvertTests converts `adapter/` to .sprompt, runs our model with it and compares with `logits.json`.

  python3 Tools/scripts/gen_peft_fixtures.py            # ~3 min on 2 loaded cores
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import sp_common as C  # noqa: E402


def logits_at(model, ids, positions):
    import torch
    with torch.no_grad():
        x = torch.tensor([ids])
        out = model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0, -1].float()
    return out, [float(out[i]) for i in positions]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=C.DEFAULT_MODEL)
    p.add_argument("--out", default=os.path.join(ROOT, "Tests/Fixtures/peft"))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--inputs", type=int, default=3)
    p.add_argument("--skip-training", action="store_true", help="reuse OUT/adapter")
    args = p.parse_args()
    task = os.path.join(ROOT, "examples/name-language")
    adapter = os.path.join(args.out, "adapter")
    if not args.skip_training:
        shutil.rmtree(adapter, ignore_errors=True)
        subprocess.run([sys.executable, os.path.join(HERE, "peft_train.py"), "--model", args.model, "--task", task,
                        "--steps", str(args.steps), "--batch", "4", "--lr", "0.3", "--warmup", "2", "--init", "TEXT",
                        "--threads", "2", "--no-test", "--eval-limit", "4", "--save", adapter, "--quiet"], check=True)
        readme = os.path.join(adapter, "README.md")  # PEFT's generated model card; not needed
        if os.path.exists(readme):
            os.remove(readme)

    import torch
    from peft import PeftModel
    torch.manual_seed(0)
    model, tokenizer = C.load_model(args.model, threads=2)
    template = C.load_task(task)["template"]
    rows = C.read_jsonl(os.path.join(task, "test.jsonl"))[: args.inputs]
    base_outputs = []
    for row in rows:
        ids = C.encode(tokenizer, C.render(template, row["input"]))
        full, _ = logits_at(model, ids, [])
        base_outputs.append((ids, full))
    peft_model = PeftModel.from_pretrained(model, adapter)
    peft_model.eval()
    vocab = base_outputs[0][1].shape[0]
    cases = []
    for row, (ids, base_full) in zip(rows, base_outputs):
        full, _ = logits_at(peft_model, ids, [])
        top = torch.topk(full, 256).indices.tolist()
        positions = sorted(set(top) | set(range(0, vocab, 192)))[:512]
        cases.append({
            "input": row["input"],
            "text": C.render(template, row["input"]),
            "token_ids": ids,
            "logit_ids": positions,
            "peft_logits": [round(float(full[i]), 5) for i in positions],
            "base_logits": [round(float(base_full[i]), 5) for i in positions],
            "top10": torch.topk(full, 10).indices.tolist(),
        })
    with open(os.path.join(adapter, "adapter_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    import peft
    result = {
        "generator": "Tools/scripts/gen_peft_fixtures.py",
        "peft_version": peft.__version__, "torch_version": torch.__version__,
        "model": os.path.basename(args.model), "steps": args.steps, "template": template,
        "num_virtual_tokens": config["num_virtual_tokens"], "vocab_size": vocab,
        "cases": cases,
    }
    with open(os.path.join(args.out, "logits.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=0)
        f.write("\n")
    print(f"wrote {args.out}/adapter and logits.json ({len(cases)} inputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
