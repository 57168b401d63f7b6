#!/usr/bin/env python3
"""Regenerates examples/name-language/ from the pycountry package (ISO names and their translations).

Task: given a country, currency or language name written in French, German, Italian or Spanish
(e.g. "Finlande", "Schweizer Franken", "tedesco"), answer which of the four languages it is in.

Source: the gettext catalogs shipped in pycountry (data of Debian's iso-codes project): the English
ISO 3166-1 country names, ISO 4217 currency names and ISO 639-3 language names and their fr/de/it/es
translations. A (translation, language) pair is kept when
  * the translation differs from the English name (untranslated entries fall back to English),
  * the same string is not a translation into another of the four languages (unambiguous label),
  * it has no ',', '(', ')', ';', '[' and at most MAX_INPUT_CHARS characters (short, plain inputs).
Every label then gets the same number of strings from each domain (the smallest pool over the four
languages; see collect()). Then, per language, strings are sorted, shuffled with random.Random(SEED) and cut into test / eval /
train (TEST_PER_CLASS / EVAL_PER_CLASS / TRAIN_PER_CLASS); every split is class-balanced and the rows
of each split are shuffled again with the same generator. Output is byte-for-byte deterministic for a
given pycountry version (PYCOUNTRY_VERSION is the one the committed files come from; another version
is refused unless --any-version is given).

  pip install pycountry==26.2.16
  python3 Tools/scripts/make_example.py            # writes examples/name-language/*
  python3 Tools/scripts/make_example.py --check    # also verifies the tokenization contract with the GGUF
"""

from __future__ import annotations

import argparse
import gettext
import json
import os
import random
import sys

PYCOUNTRY_VERSION = "26.2.16"
SEED = 20240604
LANGUAGES = {"fr": "French", "de": "German", "it": "Italian", "es": "Spanish"}
DOMAINS = ("iso3166-1", "iso4217", "iso639-3")
TEST_PER_CLASS, EVAL_PER_CLASS, TRAIN_PER_CLASS = 50, 25, 200
MAX_INPUT_CHARS = 24
TEMPLATE = "Name: {input}\nLanguage:"
HARD_PROMPT = ("Each name below is written in French, German, Italian or Spanish. "
               "Say which language it is written in.\n")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "examples", "name-language")


def english_names(pycountry, domain):
    db = {"iso3166-1": pycountry.countries, "iso4217": pycountry.currencies,
          "iso639-3": pycountry.languages}[domain]
    return sorted({item.name for item in db})


def collect(pycountry):
    """Unambiguous translations per label, with the same number from each domain for every label.

    Without the per-domain quota the Spanish rows would be mostly country and currency names and
    the others mostly language names (the catalogs translate far fewer language names into
    Spanish), which a classifier could exploit without reading the language.
    """
    locales = os.path.join(os.path.dirname(pycountry.__file__), "locales")
    produced: dict[str, dict[str, str]] = {}  # text -> {language code: first domain}
    for domain in DOMAINS:
        names = english_names(pycountry, domain)
        for code in LANGUAGES:
            catalog = gettext.translation(domain, locales, languages=[code])
            for name in names:
                text = catalog.gettext(name).strip()
                if text != name:
                    produced.setdefault(text, {}).setdefault(code, domain)
    pools: dict[tuple[str, str], list[str]] = {(c, d): [] for c in LANGUAGES for d in DOMAINS}
    for text, codes in produced.items():
        if len(codes) != 1 or any(ch in text for ch in ",();[") or len(text) > MAX_INPUT_CHARS:
            continue
        code, domain = next(iter(codes.items()))
        pools[(code, domain)].append(text)
    rng = random.Random(SEED)
    by_label: dict[str, list[str]] = {}
    for code, label in sorted(LANGUAGES.items()):
        by_label[label] = []
    for domain in DOMAINS:
        quota = min(len(pools[(c, domain)]) for c in LANGUAGES)
        for code in sorted(LANGUAGES):
            texts = sorted(pools[(code, domain)])
            rng.shuffle(texts)
            by_label[LANGUAGES[code]] += texts[:quota]
    return {label: sorted(texts) for label, texts in by_label.items()}


def split(by_label):
    rng = random.Random(SEED)
    choices = [" " + label for label in sorted(LANGUAGES.values())]
    splits = {"train": [], "eval": [], "test": []}
    for label in sorted(by_label):
        texts = list(by_label[label])
        need = TEST_PER_CLASS + EVAL_PER_CLASS + TRAIN_PER_CLASS
        if len(texts) < need:
            sys.exit(f"make_example: only {len(texts)} {label} names, need {need}")
        rng.shuffle(texts)
        parts = {"test": texts[:TEST_PER_CLASS],
                 "eval": texts[TEST_PER_CLASS:TEST_PER_CLASS + EVAL_PER_CLASS],
                 "train": texts[TEST_PER_CLASS + EVAL_PER_CLASS:need]}
        for name, items in parts.items():
            splits[name] += [{"input": t, "output": " " + label, "choices": choices} for t in items]
    for name in ("train", "eval", "test"):
        rng.shuffle(splits[name])
    return splits


def check_tokenization(splits, model_path):
    """The choice continuation must tokenize the same alone and in context (one token each)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from transformers import AutoTokenizer
    directory, name = os.path.split(os.path.abspath(model_path))
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    lengths = []
    for rows in splits.values():
        for row in rows:
            ctx = enc(TEMPLATE.replace("{input}", row["input"]))
            for choice in row["choices"]:
                alone = enc(choice)
                assert len(alone) == 1, (choice, alone)
                assert enc(TEMPLATE.replace("{input}", row["input"]) + choice) == ctx + alone, row
            lengths.append(len(ctx) + len(enc(row["output"])))
    lengths.sort()
    print(f"tokenization ok; tokens of template+input+output: min {lengths[0]} "
          f"median {lengths[len(lengths) // 2]} max {lengths[-1]} mean {sum(lengths) / len(lengths):.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--check", action="store_true", help="verify tokenization with the GGUF tokenizer")
    ap.add_argument("--model", default=os.path.expanduser(
        "~/.cache/softpromptkit/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--any-version", action="store_true")
    args = ap.parse_args()
    import pycountry
    from importlib.metadata import version
    have = version("pycountry")
    if have != PYCOUNTRY_VERSION and not args.any_version:
        sys.exit(f"make_example: pycountry {have} installed, the files come from {PYCOUNTRY_VERSION} "
                 f"(pip install pycountry=={PYCOUNTRY_VERSION}, or pass --any-version)")
    by_label = collect(pycountry)
    print("unambiguous names per language:", {k: len(v) for k, v in by_label.items()})
    splits = split(by_label)
    os.makedirs(args.out, exist_ok=True)
    for name, rows in splits.items():
        with open(os.path.join(args.out, f"{name}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)} rows")
    task = {"template": TEMPLATE, "hard_prompt": HARD_PROMPT,
            "choices": [" " + label for label in sorted(LANGUAGES.values())],
            "source": f"pycountry {have} (Debian iso-codes data), domains {', '.join(DOMAINS)}"}
    with open(os.path.join(args.out, "task.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(task, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "hard_prompt.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write(HARD_PROMPT)
    if args.check:
        check_tokenization(splits, args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
