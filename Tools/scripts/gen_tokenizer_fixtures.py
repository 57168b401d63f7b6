#!/usr/bin/env python3
"""Generates the tokenizer fixtures under Tests/Fixtures/tokenizers/ with llama.cpp as the oracle.

Requires: llama-cpp-python (its llama.cpp does the tokenizing), gguf, sentencepiece, tokenizers.
Input: corpus.txt (made by build_tokenizer_corpus.py) and the default model (SmolLM2-135M-Instruct).

Writes:
  spm.gguf            a vocab-only SentencePiece ("llama") vocabulary trained here on the corpus
                      (BPE pieces, byte fallback, one user-defined and three control symbols)
  bpe.gguf            a vocab-only byte-level BPE ("gpt2") vocabulary trained here on the corpus
  <name>.tokens.zst   llama.cpp's results for one vocabulary (zstd-compressed UTF-8 text, see below)
  unicode_flags.txt   llama.cpp's code point category table (from unicode-data.cpp, when the llama.cpp
                      sources are given with --llama-cpp-src)

<name> is "smollm" for the real model, "spm", "spm-phi3" (spm.gguf with general.name "Phi-3 Mini (test)")
and "bpe-<variant>" for bpe.gguf with the key overrides of BPE_VARIANTS (the Swift tests apply the same
overrides; only spm.gguf and bpe.gguf themselves are committed).

A .tokens.zst file holds three header lines and sections; "<i>" is a corpus entry index, ids are
space-separated, texts use the corpus escapes (\\n, \\r, \\\\, \\xHH):
  prefix: <ids>     what llama_tokenize(add_special=true) puts before the ids of every entry
  suffix: <ids>     ... and after them (checked on every entry)
  base: <name>|-    entries missing from [plain] have the ids of that other file
  [plain]           <i> TAB llama_tokenize(entry, add_special=false, parse_special=false)
  [special]         <i> TAB llama_tokenize(entry, false, parse_special=true), where it differs from [plain]
  [decode]          <i> TAB llama_detokenize(plain, remove_special=false, unparse_special=false), where it
                    differs from the entry
  [special-decode]  <i> TAB llama_detokenize(special, false, unparse_special=true), where it differs
  [bos-decode]      <i> TAB remove_special TAB unparse_special TAB llama_detokenize of the add_special ids
                    (parse_special = unparse_special), for the first 40 entries and those with <s> / </s>
  [pieces]          <id> TAB hex of llama_token_to_piece(id, special=true)  (all tokens; a sample for smollm)
  [attributes]      <id> TAB llama_vocab_get_attr(id)                      (same tokens)
  [info]            <key> TAB value: special ids, add_bos, add_eos, eog (the end-of-generation ids)

Usage: python3 Tools/scripts/gen_tokenizer_fixtures.py [--model PATH] [--llama-cpp-src DIR]
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_tokenizer_corpus import escape  # noqa: E402  (one escaping rule for corpus and fixtures)

import gguf
import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")
DEFAULT_MODEL = os.path.expanduser("~/.cache/softpromptkit/models/SmolLM2-135M-Instruct.Q4_1.gguf")

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>", "<|user|>"]
# Variants of bpe.gguf: pre-tokenizer and key overrides (None removes the key).
BPE_VARIANTS = {
    "gpt-2": {"pre": "gpt-2"},
    "llama-bpe": {"pre": "llama-bpe", "bos": "<|begin_of_text|>", "eos": "<|eot_id|>", "add_bos": None},
    "qwen2": {"pre": "qwen2", "add_bos": False, "im_end_normal": True},
    "default": {"pre": None},
    "falcon": {"pre": "falcon"},
    "qwen35": {"pre": "qwen35"},
    "starcoder": {"pre": "starcoder", "add_eos": True},
    "laguna": {"pre": "laguna"},
}


def unescape(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            n = line[i + 1]
            if n == "n":
                out.append("\n"); i += 2; continue
            if n == "r":
                out.append("\r"); i += 2; continue
            if n == "\\":
                out.append("\\"); i += 2; continue
            if n == "x":
                out.append(chr(int(line[i + 2:i + 4], 16))); i += 4; continue
        out.append(ch)
        i += 1
    return "".join(out)


def escape_bytes(data: bytes) -> str:
    return escape(data.decode("utf-8", errors="replace"))


def read_corpus() -> list[str]:
    with open(os.path.join(OUT, "corpus.txt"), encoding="utf-8", newline="\n") as f:
        data = f.read()
    assert data.endswith("\n")
    return [unescape(l) for l in data[:-1].split("\n")]


# ---------------------------------------------------------------------------- llama.cpp access

_log_callback = llama_cpp.llama_log_callback(lambda level, text, user: None)
llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
llama_cpp.llama_backend_init()


class Vocab:
    def __init__(self, path: str) -> None:
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp refused {path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n = llama_cpp.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, text: bytes, add_special: bool, parse_special: bool) -> list[int]:
        n_max = len(text) + 8
        while True:
            arr = (llama_cpp.llama_token * n_max)()
            n = llama_cpp.llama_tokenize(self.vocab, text, len(text), arr, n_max, add_special, parse_special)
            if n >= 0:
                return list(arr[:n])
            n_max = -n

    def detokenize(self, ids: list[int], remove_special: bool, unparse_special: bool) -> bytes:
        arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
        size = 64 + 16 * len(ids)
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_detokenize(self.vocab, arr, len(ids), buf, size, remove_special, unparse_special)
            if n >= 0:
                return buf.raw[:n]
            size = -n + 1

    def piece(self, token: int, special: bool) -> bytes:
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, size, 0, special)
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def close(self) -> None:
        llama_cpp.llama_model_free(self.model)


def dump(name: str, path: str, corpus: list[str], piece_ids, base: dict | None = None) -> dict:
    """Writes <name>.tokens.zst and returns the plain ids (for use as a base by variants)."""
    v = Vocab(path)
    # what add_special adds: a fixed prefix and suffix around the body, checked on every entry
    probe_body, probe = v.tokenize(b"x", False, False), v.tokenize(b"x", True, False)
    k = next(k for k in range(len(probe)) if probe[k:k + len(probe_body)] == probe_body)
    prefix, suffix = probe[:k], probe[k + len(probe_body):]
    plain_all, sections = [], {k: [] for k in ["plain", "special", "decode", "special-decode", "bos-decode"]}
    for index, entry in enumerate(corpus):
        data = entry.encode("utf-8")
        plain = v.tokenize(data, False, False)
        with_special = v.tokenize(data, True, False)
        assert with_special == prefix + plain + suffix, f"{name}: add_special does more on entry {index}"
        plain_all.append(plain)
        if base is None or base["plain"][index] != plain:
            sections["plain"].append(f"{index}\t" + " ".join(map(str, plain)))
        special = v.tokenize(data, False, True)
        if special != plain:
            sections["special"].append(f"{index}\t" + " ".join(map(str, special)))
        text = v.detokenize(plain, False, False)
        if text != data:
            sections["decode"].append(f"{index}\t{escape_bytes(text)}")
        rendered = v.detokenize(special, False, True)
        if rendered != data:
            sections["special-decode"].append(f"{index}\t{escape_bytes(rendered)}")
        if index < 40 or "<s>" in entry or "</s>" in entry:
            for remove, unparse in [(True, False), (False, True), (True, True)]:
                ids = with_special if not unparse else v.tokenize(data, True, True)
                out = v.detokenize(ids, remove, unparse)
                sections["bos-decode"].append(f"{index}\t{int(remove)}\t{int(unparse)}\t{escape_bytes(out)}")
    ids = range(v.n) if piece_ids is None else piece_ids
    sections["pieces"] = [f"{i}\t{v.piece(i, True).hex()}" for i in ids]
    sections["attributes"] = [f"{i}\t{llama_cpp.llama_vocab_get_attr(v.vocab, i)}" for i in ids]
    info = [f"{key}\t{getattr(llama_cpp, 'llama_vocab_' + key)(v.vocab)}"
            for key in ["bos", "eos", "eot", "sep", "pad", "mask", "fim_pre", "fim_suf", "fim_mid", "fim_pad",
                        "fim_rep", "fim_sep", "n_tokens"]]
    info.append("add_bos\t%d" % llama_cpp.llama_vocab_get_add_bos(v.vocab))
    info.append("add_eos\t%d" % llama_cpp.llama_vocab_get_add_eos(v.vocab))
    info.append("eog\t" + " ".join(str(i) for i in range(v.n) if llama_cpp.llama_vocab_is_eog(v.vocab, i)))
    sections["info"] = info
    lines = ["prefix: " + " ".join(map(str, prefix)), "suffix: " + " ".join(map(str, suffix)),
             "base: " + (base["name"] if base else "-")]
    for key, body in sections.items():
        lines.append(f"[{key}]")
        lines += body
    text = ("\n".join(lines) + "\n").encode("utf-8")
    target = os.path.join(OUT, f"{name}.tokens.zst")
    with tempfile.NamedTemporaryFile() as plain_file:  # from a file, so the frame records its size
        plain_file.write(text)
        plain_file.flush()
        subprocess.run(["zstd", "-19", "-q", "-f", plain_file.name, "-o", target], check=True)
    print(f"{name}: {sum(map(len, plain_all))} tokens, {len(sections['plain'])} entries stored, "
          f"{len(sections['special'])} differ with parse_special, {len(sections['decode'])} do not round-trip, "
          f"{os.path.getsize(target)} bytes")
    v.close()
    return {"name": name, "plain": plain_all}


def write(filename: str, lines: list[str]) -> None:
    with open(os.path.join(OUT, filename), "w", encoding="utf-8", newline="\n") as f:
        for l in lines:
            f.write(l + "\n")


# ---------------------------------------------------------------------------- small vocabularies

def training_lines(corpus: list[str]) -> list[str]:
    lines = []
    for entry in corpus:
        lines += [l for l in entry.replace("\r", "\n").split("\n") if l]
    return lines


def train_spm(corpus: list[str]) -> tuple[list[str], list[float], list[int]]:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_lines(corpus)), model_writer=model,
        model_type="bpe", vocab_size=1600, byte_fallback=True, character_coverage=0.98,
        normalization_rule_name="identity", remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        split_digits=True, user_defined_symbols=["<|user|>"], control_symbols=["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, max_sentence_length=20000, num_threads=1,
        minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        tokens.append(piece)
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif piece == "<|user|>":
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    return tokens, scores, types


def write_spm(vocabulary: tuple[list[str], list[float], list[int]], path: str, model_name: str | None = None) -> None:
    tokens, scores, types = vocabulary
    w = gguf.GGUFWriter(path, "llama")
    if model_name:
        w.add_name(model_name)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    finish(w)


def train_bpe(corpus: list[str]) -> tuple[list[str], list[str]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # No regex split while training: merges then also span the boundaries the pre-tokenizers draw
    # (contractions, digit groups, punctuation, spaces), so a wrong boundary changes the ids.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=SPECIALS)
    tok.train_from_iterator(corpus, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = model["vocab"]
    tokens = [None] * len(vocab)
    for text, i in vocab.items():
        tokens[i] = text
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, merges


def write_bpe(tokens: list[str], merges: list[str], path: str, variant: dict) -> None:
    ids = {t: i for i, t in enumerate(tokens)}
    types = []
    for t in tokens:
        if t == "<|user|>":
            types.append(gguf.TokenType.USER_DEFINED)
        elif t in SPECIALS and not (t == "<|im_end|>" and variant.get("im_end_normal")):
            types.append(gguf.TokenType.CONTROL)
        else:
            types.append(gguf.TokenType.NORMAL)
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    if variant.get("pre") is not None:
        w.add_tokenizer_pre(variant["pre"])
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids[variant.get("bos", "<|endoftext|>")])
    w.add_eos_token_id(ids[variant.get("eos", "<|endoftext|>")])
    if variant.get("add_bos", False) is not None:
        w.add_add_bos_token(variant.get("add_bos", False))
    if "add_eos" in variant:
        w.add_add_eos_token(variant["add_eos"])
    finish(w)


def finish(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------- unicode table

def write_unicode_flags(src_dir: str) -> None:
    path = os.path.join(src_dir, "unicode-data.cpp")
    if not os.path.exists(path):
        path = os.path.join(src_dir, "src", "unicode-data.cpp")
    if not os.path.exists(path):
        print("unicode-data.cpp not found; unicode_flags.txt left as is")
        return
    src = open(path, encoding="utf-8").read()
    ranges = re.search(r"unicode_ranges_flags = \{(.*?)\};", src, re.S).group(1)
    pairs = re.findall(r"\{0x([0-9A-Fa-f]+), 0x([0-9A-Fa-f]+)\}", ranges)
    ws = re.search(r"unicode_set_whitespace = \{(.*?)\};", src, re.S).group(1)
    spaces = re.findall(r"0x([0-9A-Fa-f]+)", ws)
    lines = ["# llama.cpp unicode_ranges_flags: <first code point> <flags>, each range ending where the next begins"]
    lines += [f"{int(a, 16):X} {int(b, 16):X}" for a, b in pairs]
    lines.append("whitespace " + " ".join(f"{int(s, 16):X}" for s in spaces))
    write("unicode_flags.txt", lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--llama-cpp-src", default=None)
    args = ap.parse_args()
    corpus = read_corpus()
    if args.llama_cpp_src:
        write_unicode_flags(args.llama_cpp_src)

    sample = sorted(set(list(range(0, 300)) + list(range(300, 49152, 97))))
    dump("smollm", args.model, corpus, sample)

    spm_vocabulary = train_spm(corpus)
    spm_path = os.path.join(OUT, "spm.gguf")
    write_spm(spm_vocabulary, spm_path)
    spm_base = dump("spm", spm_path, corpus, None)
    with tempfile.TemporaryDirectory() as tmp:
        # llama.cpp recognises Phi-3 by general.name and strips whitespace after its special tokens
        path = os.path.join(tmp, "phi3.gguf")
        write_spm(spm_vocabulary, path, model_name="Phi-3 Mini (test)")
        dump("spm-phi3", path, corpus, list(range(8)), spm_base)

    tokens, merges = train_bpe(corpus)
    write_bpe(tokens, merges, os.path.join(OUT, "bpe.gguf"), BPE_VARIANTS["gpt-2"])
    base = dump("bpe-gpt-2", os.path.join(OUT, "bpe.gguf"), corpus, None)
    with tempfile.TemporaryDirectory() as tmp:
        for name, variant in BPE_VARIANTS.items():
            if name == "gpt-2":
                continue
            path = os.path.join(tmp, f"{name}.gguf")
            write_bpe(tokens, merges, path, variant)
            dump(f"bpe-{name}", path, corpus, [tokens.index(t) for t in SPECIALS], base)


if __name__ == "__main__":
    main()
