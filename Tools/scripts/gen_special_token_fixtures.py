#!/usr/bin/env python3
"""Writes Tests/Fixtures/tokenizers/special-tokens.json: how transformers (and llama.cpp, when
llama-cpp-python is installed) split prompt text at special tokens.

Oracle: transformers' fast tokenizer (Hugging Face `tokenizers`), called as a PEFT script calls it:
`tokenizer(text, add_special_tokens=False)` parses special tokens; `split_special_tokens=True` keeps
them as text. The tokenizers:

  tiny-llama, tiny-qwen2  Tests/Fixtures/hf/<name>/tokenizer.json as transformers loads it
  tiny-strip              Tests/Fixtures/hf/tiny-strip: tiny-qwen2 with `lstrip` on <|im_end|> and
                          `rstrip` on the non-special <|user|> (written by this script)
  bpe, spm                Tests/Fixtures/tokenizers/{bpe,spm}.gguf, converted by transformers' own GGUF
                          tokenizer builder (transformers.integrations.gguf.gguf_tokenizer_mapping)
  smollm                  the default model (SmolLM2-135M-Instruct GGUF), converted the same way
                          (skipped with a note when the model is absent)

Per text and tokenizer: "special" (specials parsed) and "plain" (specials as text), without BOS/EOS.
When llama-cpp-python is importable, "llamacpp_special" / "llamacpp_plain" hold llama_tokenize's ids
(add_special=false, parse_special=true/false) for the GGUF vocabularies.

For spm.gguf transformers is not the reference: its GGUF builder rebuilds the merges from the scores
and its Metaspace pre-tokenizer (prepend_scheme "first") puts no space before the text that follows a
special token, while llama.cpp (add_space_prefix) does; the Swift tests compare spm with llama.cpp only.

Requires: transformers, tokenizers, gguf, numpy (no torch: the GGUF metadata is read with gguf-py).
Usage: python3 Tools/scripts/gen_special_token_fixtures.py [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import gguf
import tokenizers
import transformers
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
OUT = os.path.join(FIXTURES, "tokenizers", "special-tokens.json")
DEFAULT_MODEL = os.path.expanduser("~/.cache/softpromptkit/models/SmolLM2-135M-Instruct.Q4_1.gguf")

CHATML = "<|im_start|>user\nTranslate to French: cheese<|im_end|>\n<|im_start|>assistant\n"

TEXTS = [
    CHATML,
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|>",  # adjacent
    "<|im_end|><|im_start|><|endoftext|>",
    " <|im_start|> user",  # spaces around
    "x  <|im_end|>  y",
    "tab\t<|im_end|>\ttab",
    "\n<|im_end|>\n\n",
    "ideographic\u3000<|im_end|>\u3000space",  # Unicode whitespace (strips differ: isspace vs White_Space)
    "<|im_start",  # partial lookalikes
    "<|im_start|<|im_end|>",
    "<|im_end|>|>",
    "<<|im_start|>>",
    "<|IM_START|> and <| im_start |>",
    "<|user|>hello <|user|> world<|user|>",  # user-defined (non-special added) token
    "<|endoftext|>The end.<|endoftext|>",
    "<s>Hello</s> <unk> world",
    "<|begin_of_text|><|eot_id|>text",
    "Ünïcödé <|im_end|>日本語<|im_start|>😀",
    "a<|im_start|>b<|im_end|>c",
    "<|im_start|>assistant\n<think>\n</think>\n",
    "no specials here, just text.",
]


def gguf_backend(path: str) -> tokenizers.Tokenizer:
    """The tokenizer transformers builds for a GGUF file (its own builder, metadata read by gguf-py)."""
    reader = gguf.GGUFReader(path)
    fields = reader.fields
    architecture = fields["general.architecture"].contents()
    tokenizer_dict = {}
    for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items():
        if "tokenizer." + key in fields:
            tokenizer_dict[name] = fields["tokenizer." + key].contents()
    backend, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    return backend


def strip_variant() -> str:
    """tiny-qwen2 with lstrip on a special and rstrip on a non-special added token."""
    source = os.path.join(FIXTURES, "hf", "tiny-qwen2")
    target = os.path.join(FIXTURES, "hf", "tiny-strip")
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(source, "tokenizer.json"), encoding="utf-8") as f:
        data = json.load(f)
    for token in data["added_tokens"]:
        if token["content"] == "<|im_end|>":
            token["lstrip"] = True
        if token["content"] == "<|user|>":
            token["rstrip"] = True
    with open(os.path.join(target, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    shutil.copy(os.path.join(source, "tokenizer_config.json"), os.path.join(target, "tokenizer_config.json"))
    return target


def transformers_ids(tokenizer, text: str, parse: bool) -> list[int]:
    return tokenizer(text, add_special_tokens=False, split_special_tokens=not parse)["input_ids"]


def llama_cpp_ids(path: str):
    """(text, parse -> llama.cpp's ids, llama-cpp-python's version), or (None, None) without it."""
    try:
        import llama_cpp
        from gen_tokenizer_fixtures import Vocab  # one llama.cpp access for the tokenizer fixtures
    except ImportError:
        return None, None
    vocab = Vocab(path)
    return (lambda text, parse: vocab.tokenize(text.encode("utf-8"), False, parse)), llama_cpp.__version__


def compact_json(value, indent: str = "") -> str:
    """JSON with one text or one case per line (ids stay on their case's line)."""
    inner = indent + " "
    if isinstance(value, dict) and not all(isinstance(v, list) and all(isinstance(i, int) for i in v) for v in value.values()):
        members = [f"{inner}{json.dumps(k)}: {compact_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(members) + "\n" + indent + "}"
    if isinstance(value, list) and value and isinstance(value[0], (dict, str)):
        return "[\n" + ",\n".join(inner + compact_json(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("SOFTPROMPT_MODEL", DEFAULT_MODEL))
    args = parser.parse_args()

    sources = [
        ("tiny-llama", "hf/tiny-llama", AutoTokenizer.from_pretrained(os.path.join(FIXTURES, "hf", "tiny-llama")), None),
        ("tiny-qwen2", "hf/tiny-qwen2", AutoTokenizer.from_pretrained(os.path.join(FIXTURES, "hf", "tiny-qwen2")), None),
        ("tiny-strip", "hf/tiny-strip", AutoTokenizer.from_pretrained(strip_variant()), None),
    ]
    ggufs = [("bpe", "tokenizers/bpe.gguf", os.path.join(FIXTURES, "tokenizers", "bpe.gguf")),
             ("spm", "tokenizers/spm.gguf", os.path.join(FIXTURES, "tokenizers", "spm.gguf"))]
    if os.path.exists(args.model):
        ggufs.append(("smollm", "default model", args.model))
    else:
        print(f"note: {args.model} is absent; the smollm entries are left out")
    for name, label, path in ggufs:
        sources.append((name, label, PreTrainedTokenizerFast(tokenizer_object=gguf_backend(path)), path))

    llama_version = None
    entries = []
    for name, label, tokenizer, gguf_path in sources:
        llama_tokenize = None
        if gguf_path is not None:
            llama_tokenize, version = llama_cpp_ids(gguf_path)
            llama_version = version or llama_version
        cases = []
        for text in TEXTS:
            case = {"special": transformers_ids(tokenizer, text, True), "plain": transformers_ids(tokenizer, text, False)}
            if llama_tokenize is not None:
                case["llamacpp_special"] = llama_tokenize(text, True)
                case["llamacpp_plain"] = llama_tokenize(text, False)
            cases.append(case)
        entries.append({"name": name, "source": label, "cases": cases})
        print(f"{name}: ChatML prompt -> {len(cases[0]['special'])} tokens parsed, {len(cases[0]['plain'])} as text")

    oracle = f"transformers {transformers.__version__} (tokenizers {tokenizers.__version__}); GGUF metadata via gguf-py"
    if llama_version:
        oracle += f"; llama.cpp via llama-cpp-python {llama_version}"
    result = {
        "generator": "Tools/scripts/gen_special_token_fixtures.py",
        "oracle": oracle,
        "texts": TEXTS,
        "tokenizers": entries,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(compact_json(result) + "\n")
    print("wrote", os.path.relpath(OUT, ROOT))


if __name__ == "__main__":
    main()
