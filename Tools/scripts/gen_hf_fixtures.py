#!/usr/bin/env python3
"""Fixtures and cross-checks for Hugging Face directories (Tests/Fixtures/hf/), with the Hugging Face
libraries themselves as oracles.

Requires: numpy, gguf, torch, transformers, tokenizers, safetensors (CPU torch is enough).

Subcommands:

  tiny      Writes two tiny random models as Hugging Face directories, with tokenizers trained here by
            the `tokenizers` library on the tokenizer corpus, and what the Hugging Face libraries compute
            for them:
              tiny-llama/   LlamaForCausalLM, BF16, untied lm_head, sharded in two files with an index;
                            Llama 3 pre-tokenizer, ignore_merges, TemplateProcessing adding
                            <|begin_of_text|>, one non-special added token; merges in [a, b] form
              tiny-qwen2/   Qwen2ForCausalLM, F16, Q/K/V biases, tied embeddings; Qwen 2 pre-tokenizer,
                            ByteLevel post-processor, "a b" merges
              tiny.json     per model: the text, its input ids (by `tokenizers`), the logits file name
              tiny-<model>.logits.npy   transformers' float32 logits, [positions, vocab]
              tiny-tokenizers.ids.zst   `tokenizers` ids (add_special_tokens=True) of every 5th corpus entry
                            and of every entry holding a special token text, one line per entry:
                            "<model> TAB <entry index> TAB <ids>" (zstd-compressed text)
  smollm    Converts the default model to a Hugging Face directory with our CLI (f32), loads it with
            transformers and writes smollm2-transformers.json: the prompt ids (encoded by transformers'
            tokenizer from our tokenizer.json) and the top-32 logits (ids, values) at every position.
            Also prints transformers vs our GGUF runtime (max abs diff, cosine) on several prompts.
  check-tokenizers DIR
            Every DIR/<case>.tokenizer.json (written by HuggingFaceTokenizerTests when
            SOFTPROMPT_HF_TOKENIZER_DUMP=DIR is set, or tokenizer.json of a converted directory named
            smollm) is run through `tokenizers` on the whole corpus and compared with llama.cpp's ids in
            Tests/Fixtures/tokenizers/<case>.tokens.zst (parse_special, the behaviour of `tokenizers`).
            Prints the number of differing entries per case.

Usage:
  python3 Tools/scripts/gen_hf_fixtures.py tiny
  python3 Tools/scripts/gen_hf_fixtures.py smollm [--softprompt .build/release/softprompt] [--model PATH]
  python3 Tools/scripts/gen_hf_fixtures.py check-tokenizers DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "hf")
TOK = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")
DEFAULT_MODEL = os.path.expanduser("~/.cache/softpromptkit/models/SmolLM2-135M-Instruct.Q4_1.gguf")

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
SPECIAL_TEXTS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|user|>"]


def corpus() -> list[str]:
    """The corpus entries with escapes resolved (\\n, \\r, \\\\, \\xHH as a byte), as the Swift tests read them."""
    out = []
    for raw in open(os.path.join(TOK, "corpus.txt"), "rb").read().split(b"\n")[:-1]:
        b = bytearray()
        i = 0
        while i < len(raw):
            if raw[i] == 0x5C and i + 1 < len(raw):
                c = raw[i + 1]
                if c == 0x6E:
                    b.append(10); i += 2; continue
                if c == 0x72:
                    b.append(13); i += 2; continue
                if c == 0x5C:
                    b.append(0x5C); i += 2; continue
                if c == 0x78 and i + 3 < len(raw):
                    try:
                        b.append(int(raw[i + 2:i + 4], 16)); i += 4; continue
                    except ValueError:
                        pass
            b.append(raw[i]); i += 1
        out.append(b.decode("utf-8", "replace"))
    return out


def subset_indices(entries: list[str]) -> list[int]:
    return [i for i, e in enumerate(entries) if i % 5 == 0 or any(s in e for s in SPECIAL_TEXTS)]


# ----------------------------------------------------------------------------------------- tiny models

def train_tokenizer(kind: str, entries: list[str]):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    if kind == "llama":
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
        tok = Tokenizer(models.BPE(ignore_merges=True))
        split = pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False)
    else:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = Tokenizer(models.BPE())
        split = pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False)
    tok.pre_tokenizer = pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(entries, trainer)
    tok.add_tokens(["<|user|>"])  # a non-special added token
    if kind == "llama":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
            special_tokens=[("<|begin_of_text|>", bos)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def write_tokenizer(tok, directory: str, kind: str, pair_merges: bool):
    path = os.path.join(directory, "tokenizer.json")
    tok.save(path)
    data = json.load(open(path, encoding="utf-8"))
    merges = data["model"]["merges"]
    # tokenizers >= 0.20 writes [a, b] pairs; the Qwen 2 model gets the older "a b" strings.
    if not pair_merges:
        data["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in merges]
    elif merges and isinstance(merges[0], str):
        data["model"]["merges"] = [m.split(" ", 1) for m in merges]
    json.dump(data, open(path, "w", encoding="utf-8"), ensure_ascii=False, indent=1)
    if kind == "llama":
        config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<|begin_of_text|>",
                  "eos_token": "<|eot_id|>", "clean_up_tokenization_spaces": True,
                  "model_max_length": 64, "tokenizer_class": "PreTrainedTokenizerFast"}
    else:
        config = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                  "unk_token": None, "clean_up_tokenization_spaces": False,
                  "model_max_length": 64, "tokenizer_class": "PreTrainedTokenizerFast"}
    json.dump(config, open(os.path.join(directory, "tokenizer_config.json"), "w"), indent=1)


def make_model(kind: str, vocab: int, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5)
    # RoPE bases other than the default 10000, and linear scaling on qwen2, so that reading them is tested.
    if kind == "llama":
        config = LlamaConfig(**common, rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
                             tie_word_embeddings=False, bos_token_id=None, eos_token_id=None)
        model = LlamaForCausalLM(config)
    else:
        config = Qwen2Config(**common, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 20000.0},
                             tie_word_embeddings=True, use_sliding_window=False, max_window_layers=2)
        model = Qwen2ForCausalLM(config)
    # Weights of unit scale, so that logits spread widely and a wrong rotation or row order shows.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5 * 1.5)
    return model


def cmd_tiny(_args):
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM
    entries = corpus()
    os.makedirs(OUT, exist_ok=True)
    summary = {"models": {}}
    token_lines: list[str] = []
    subset = subset_indices(entries)
    for kind, dtype, seed in [("llama", torch.bfloat16, 1), ("qwen2", torch.float16, 2)]:
        directory = os.path.join(OUT, "tiny-" + kind)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        tok = train_tokenizer(kind, entries)
        write_tokenizer(tok, directory, kind, pair_merges=(kind == "llama"))
        vocab = tok.get_vocab_size()
        model = make_model(kind, vocab, seed).to(dtype)
        # llama: sharded (max_shard_size small enough for two files); qwen2: one file.
        model.save_pretrained(directory, safe_serialization=True, max_shard_size="60KB" if kind == "llama" else "10GB")
        for extra in ["generation_config.json"]:
            p = os.path.join(directory, extra)
            if os.path.exists(p):
                os.remove(p)
        # The oracle: transformers in float32 on the stored (bf16/f16) weights.
        reloaded = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        text = "Hello world! It's 2024: the quick brown fox jumps over 13 lazy dogs."
        hf_tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        ids = hf_tok.encode(text, add_special_tokens=True).ids[:16]
        with torch.no_grad():
            logits = reloaded(torch.tensor([ids])).logits[0].float().numpy()
        np.save(os.path.join(OUT, f"tiny-{kind}.logits.npy"), logits.astype(np.float32))
        summary["models"]["tiny-" + kind] = {"ids": ids, "logits": f"tiny-{kind}.logits.npy", "text": text}
        # tokenizers' ids on the corpus subset.
        for i in subset:
            token_lines.append(f"tiny-{kind}\t{i}\t" + " ".join(map(str, hf_tok.encode(entries[i], add_special_tokens=True).ids)))
        files = sorted(os.listdir(directory))
        print(f"tiny-{kind}: vocab {vocab}, files {files}, {len(ids)} positions, "
              f"logit range {logits.min():.2f}..{logits.max():.2f}")
    json.dump(summary, open(os.path.join(OUT, "tiny.json"), "w"), indent=1)
    ids_path = os.path.join(OUT, "tiny-tokenizers.ids.zst")
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt") as plain:
        plain.write("\n".join(token_lines) + "\n")
        plain.flush()
        # From a file, so that the frame records its size (the Swift reader needs it).
        subprocess.run(["zstd", "-q", "-19", "-f", plain.name, "-o", ids_path], check=True)
    print("wrote", os.path.join(OUT, "tiny.json"), "and", ids_path, os.path.getsize(ids_path), "bytes")


# ----------------------------------------------------------------------------------------- default model

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Once upon a time, in a small village nestled between the mountains, there lived",
]


def cmd_smollm(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    work = tempfile.mkdtemp(prefix="softpromptkit-hf-")
    directory = os.path.join(work, "smollm2-f32")
    try:
        subprocess.run([args.softprompt, "convert-model", "-m", args.model, "--out", directory, "--dtype", "f32"], check=True)
        tok = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        fixture = None
        for n, prompt in enumerate(PROMPTS):
            ids = tok(prompt, add_special_tokens=True)["input_ids"]
            with torch.no_grad():
                ref = model(torch.tensor([ids])).logits[0].double().numpy()
            out = os.path.join(work, "ours.npy")
            subprocess.run([args.softprompt, "generate", "--model", args.model, "--ids", ",".join(map(str, ids)),
                            "-n", "1", "--logits-out", out], check=True, capture_output=True)
            ours = np.load(out).astype(np.float64)
            cos = min(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(ref, ours))
            print(f"prompt {n} ({len(ids)} tokens): transformers vs our GGUF runtime: max abs "
                  f"{np.abs(ref - ours).max():.3g}, min cosine {cos:.9f}, "
                  f"argmax agree {(ref.argmax(1) == ours.argmax(1)).mean():.2f}")
            if n == 0:
                top = np.argsort(-ref, axis=1)[:, :32]
                fixture = {"prompt": prompt, "ids": ids, "positions": [
                    {"top_ids": [int(i) for i in top[t]], "top_values": [round(float(ref[t, i]), 6) for i in top[t]]}
                    for t in range(len(ids))]}
        path = os.path.join(OUT, "smollm2-transformers.json")
        json.dump(fixture, open(path, "w"), separators=(",", ":"))
        print("wrote", path, os.path.getsize(path), "bytes")
        if args.keep:
            print("kept", directory)
        else:
            shutil.rmtree(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


# ----------------------------------------------------------------------------------------- tokenizer check

def llama_cpp_ids(case: str) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    text = subprocess.run(["zstd", "-dc", os.path.join(TOK, case + ".tokens.zst")], check=True,
                          capture_output=True).stdout.decode()
    section, plain, special, base = None, {}, {}, None
    for line in text.split("\n"):
        if line.startswith("base: ") and line != "base: -":
            base = line[6:]
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if not line or section not in ("plain", "special"):
            continue
        index, _, ids = line.partition("\t")
        (plain if section == "plain" else special)[int(index)] = [int(x) for x in ids.split()]
    if base:
        for k, v in llama_cpp_ids(base)[0].items():
            plain.setdefault(k, v)
    return plain, special


def cmd_check(args):
    from tokenizers import Tokenizer
    entries = corpus()
    for name in sorted(os.listdir(args.dir)):
        if not name.endswith(".tokenizer.json"):
            continue
        case = name[: -len(".tokenizer.json")]
        tok = Tokenizer.from_file(os.path.join(args.dir, name))
        plain, special = llama_cpp_ids(case)
        bad = [i for i, e in enumerate(entries)
               if tok.encode(e, add_special_tokens=False).ids != special.get(i, plain[i])]
        print(f"{case}: tokenizers vs llama.cpp (parse_special) on {len(entries)} entries: {len(bad)} differ"
              + (f" (first {bad[:5]})" if bad else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tiny")
    p = sub.add_parser("smollm")
    p.add_argument("--softprompt", default=os.path.join(ROOT, ".build", "release", "softprompt"))
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--keep", action="store_true", help="keep the converted directory")
    p = sub.add_parser("check-tokenizers")
    p.add_argument("dir")
    args = parser.parse_args()
    {"tiny": cmd_tiny, "smollm": cmd_smollm, "check-tokenizers": cmd_check}[args.command](args)


if __name__ == "__main__":
    main()
