"""Shared helpers for the Python reference side of training (issue 4).

Used by zero_shot.py, peft_train.py and train_bench.py. The conventions here are the
ones `softprompt train` follows, so that numbers from the two sides are comparable:

* rows are JSON objects {"input": str, "output": str, "choices": [str, ...]};
* a row becomes tokens(render(template, input)) + tokens(output), each part tokenized
  on its own with no special tokens (SmolLM2's GGUF adds no BOS);
* the loss is next-token cross-entropy on the output tokens only;
* evaluation is rank classification: the prediction is the choice whose tokens have the
  largest summed log-probability after the context (ties go to the first choice), and
  accuracy is the fraction of rows whose prediction equals `output`.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Iterable

DEFAULT_MODEL = os.path.expanduser(
    "~/.cache/softpromptkit/models/SmolLM2-135M-Instruct.Q4_1.gguf")


def read_jsonl(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            for key in ("input", "output"):
                if not isinstance(row.get(key), str):
                    raise ValueError(f"{path}:{n}: '{key}' must be a string")
            rows.append(row)
    return rows


def render(template: str, text: str) -> str:
    """Substitutes the row's input for the single `{input}` placeholder (no other escapes)."""
    if template.count("{input}") != 1:
        raise ValueError("the template must contain exactly one {input}")
    return template.replace("{input}", text)


def load_task(task_dir: str) -> dict:
    """Reads examples/<task>/task.json (template, hard prompt, label set)."""
    with open(os.path.join(task_dir, "task.json"), encoding="utf-8") as f:
        return json.load(f)


def load_model(model_path: str = DEFAULT_MODEL, threads: int | None = None):
    """Loads a GGUF file through transformers (dequantized to float32) with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
    directory, name = os.path.split(os.path.abspath(model_path))
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def rank_classify(model, tokenizer, rows: list[dict], template: str, prefix: str = "",
                  batch_size: int = 32, forward=None) -> dict:
    """Rank classification accuracy of `rows`.

    The context is tokens(prefix + render(template, input)); each choice is scored by the
    summed log-probability of tokens(choice) after it. `forward(input_ids, attention_mask)`
    may be given to score through something else than `model` (e.g. a PEFT wrapper that
    prepends virtual tokens); it must return logits for the real positions only.
    """
    import torch
    if forward is None:
        def forward(ids, mask):
            return model(input_ids=ids, attention_mask=mask).logits
    # One sequence per row when every choice is a single token (the logits at the last context
    # position score all of them); otherwise one sequence per (row, choice).
    items = []  # (row index, [(choice index, choice ids)], context ids, scored continuation ids)
    for i, row in enumerate(rows):
        ctx = encode(tokenizer, prefix + render(template, row["input"]))
        conts = [(j, encode(tokenizer, choice)) for j, choice in enumerate(row["choices"])]
        if all(len(x) == 1 for _, x in conts):
            items.append((i, conts, ctx, []))
        else:
            items.extend((i, [(j, x)], ctx, x) for j, x in conts)
    scores: dict[tuple[int, int], float] = {}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            length = max(len(c) + len(x) for _, _, c, x in chunk)
            ids = torch.full((len(chunk), length), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), length), dtype=torch.long)
            for k, (_, _, c, x) in enumerate(chunk):
                seq = c + x
                ids[k, :len(seq)] = torch.tensor(seq)
                mask[k, :len(seq)] = 1
            logp = torch.log_softmax(forward(ids, mask).float(), dim=-1)
            for k, (i, conts, c, _) in enumerate(chunk):
                for j, x in conts:
                    scores[(i, j)] = sum(logp[k, len(c) + t - 1, tok].item() for t, tok in enumerate(x))
    correct = 0
    predictions = []
    confusion: dict[str, dict[str, int]] = {}
    for i, row in enumerate(rows):
        best = max(range(len(row["choices"])), key=lambda j: (scores[(i, j)], -j))
        pred = row["choices"][best]
        predictions.append(pred)
        correct += pred == row["output"]
        confusion.setdefault(row["output"], {}).setdefault(pred, 0)
        confusion[row["output"]][pred] += 1
    return {"accuracy": correct / max(1, len(rows)), "n": len(rows),
            "predictions": predictions, "confusion": confusion}


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(who).ru_maxrss
    return kib / 1024.0 if sys.platform != "darwin" else kib / (1024.0 * 1024.0)


def balanced_counts(rows: Iterable[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["output"]] = counts.get(row["output"], 0) + 1
    return dict(sorted(counts.items()))
