#!/usr/bin/env python3
"""Checks that a PEFT adapter directory written by `softprompt` loads in PEFT and runs like our runtime.

Input: the directory ConvertTests writes when SOFTPROMPT_CONVERT_DUMP=DIR is set:
  DIR/written-peft/   our PROMPT_TUNING adapter (converted from Tests/Fixtures/peft/adapter via .sprompt)
  DIR/ours.json       our runtime's last-position logits at the fixture's token ids
Output: Tests/Fixtures/peft/written_check.json with, per input, the cosine between
PeftModel.from_pretrained(base, DIR/written-peft) and our runtime, and between it and the original
adapter's PEFT logits (Tests/Fixtures/peft/logits.json), plus whether the stored tensor is bit-identical.

  swift build -c release --build-tests -Xswiftc -enable-testing --scratch-path .build-X
  SOFTPROMPT_CONVERT_DUMP=/tmp/cv swift test -c release -Xswiftc -enable-testing --skip-build \
      --scratch-path .build-X --filter AgainstPEFT
  python3 Tools/scripts/check_peft_written.py /tmp/cv
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import sp_common as C  # noqa: E402


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def main() -> int:
    dump = sys.argv[1] if len(sys.argv) > 1 else "/tmp/cv"
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "Tests/Fixtures/peft/written_check.json")
    adapter = os.path.join(dump, "written-peft")
    with open(os.path.join(dump, "ours.json"), encoding="utf-8") as f:
        ours = json.load(f)["cases"]
    with open(os.path.join(ROOT, "Tests/Fixtures/peft/logits.json"), encoding="utf-8") as f:
        reference = json.load(f)["cases"]

    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    model, tokenizer = C.load_model(threads=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = PeftModel.from_pretrained(model, adapter)
    peft_model.eval()
    written = load_file(os.path.join(adapter, "adapter_model.safetensors"))["prompt_embeddings"]
    original = load_file(os.path.join(ROOT, "Tests/Fixtures/peft/adapter/adapter_model.safetensors"))["prompt_embeddings"]
    loaded = peft_model.prompt_encoder["default"].embedding.weight.detach()
    cases = []
    for mine, ref in zip(ours, reference):
        assert mine["text"] == ref["text"] and mine["logit_ids"] == ref["logit_ids"]
        ids = C.encode(tokenizer, ref["text"])
        with torch.no_grad():
            x = torch.tensor([ids])
            logits = peft_model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0, -1].float()
        at = [float(logits[i]) for i in ref["logit_ids"]]
        cases.append({
            "text": ref["text"],
            "cosine_peft_loaded_vs_ours": cosine(at, mine["ours"]),
            "cosine_peft_loaded_vs_original_adapter": cosine(at, ref["peft_logits"]),
            "max_abs_diff_vs_ours": max(abs(a - b) for a, b in zip(at, mine["ours"])),
            "argmax_equal": int(logits.argmax()) == ref["top10"][0],
        })
    with open(os.path.join(adapter, "adapter_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    result = {
        "generator": "Tools/scripts/check_peft_written.py",
        "config_written": {k: v for k, v in config.items() if k != "base_model_name_or_path"},
        "tensor_bit_identical_to_original": bool(torch.equal(written, original)),
        "loaded_weight_equals_file": bool(torch.equal(loaded, written)),
        "load_warnings": sorted({str(w.message)[:200] for w in caught}),
        "cases": cases,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(result, indent=1))
    return 0 if all(c["cosine_peft_loaded_vs_ours"] >= 0.999 for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
