#!/usr/bin/env python3
"""Regenerates Tests/Fixtures/tiny/ (tiny random-weight GGUF models, one per architecture feature and
weight type, with their exact float64 logits) and Tests/Fixtures/llamacpp/tiny-llamacpp.json (how far
llama.cpp sits from those exact logits).

Every model is seeded and written with gguf-py's GGUFWriter; the K-quant model is an F32 model written
the same way and then quantized by llama.cpp itself (`llama_model_quantize`, Q4_K_M recipe through
llama-cpp-python), so its blocks are genuine ggml quantizer output. Vocabularies come from the tokenizer
fixtures (Tests/Fixtures/tokenizers/{spm,bpe}.gguf): the full 1,600-piece SentencePiece vocabulary, its
first 320 pieces (specials, the 256 byte pieces and the first merges: still a valid SentencePiece
vocabulary), or the 1,200-token byte-level BPE vocabulary.

For every model (prompts are random token ids, seeded):
  <name>.gguf            the model
  <name>.emb8.npy        8 random input embeddings [8, width] (N(0, std of token_embd)), float32
  <name>.exact.npy       exact logits of the 12-token prompt, [12, V] float32
  <name>.exact-emb8.npy  exact logits of the 8 embeddings + the same 12 tokens, [20, V] float32
  tiny.json              the manifest: per model its features, prompt ids and a 16-token exact greedy
                         continuation with the top-2 margin at every step
and in Tests/Fixtures/llamacpp/tiny-llamacpp.json, for the same two inputs, llama.cpp's top-1 id, top-2
margin, KL(exact || llama.cpp), max abs and cosine per token position (llama.cpp defaults: F16 KV cache,
flash attention auto, one thread; extra weight buffer types off, see llamacpp_compare.py), through
/work/shared/oracles/oracle.py (run as a process, not imported).

`general.architecture = mistral` is not an architecture llama.cpp knows (its converter writes Mistral
models as `llama`); llama.cpp is given a copy of that model relabelled `llama` (see llamacpp_compare.py).

usage: Tools/scripts/gen_tiny_models.py [--oracle /work/shared/oracles/oracle.py] [--only NAME,...]
"""
import argparse, json, os, sys, tempfile
import numpy as np
import gguf

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from exact_reference import Reference  # noqa: E402
import llamacpp_compare as lc  # noqa: E402

root = os.path.normpath(os.path.join(here, "..", ".."))
tiny_dir = os.path.join(root, "Tests", "Fixtures", "tiny")
llamacpp_dir = os.path.join(root, "Tests", "Fixtures", "llamacpp")
T = gguf.GGMLQuantizationType

PROMPT_LENGTH = 12
GREEDY_STEPS = 16


# ---------------------------------------------------------------------------------------------------
# vocabularies
# ---------------------------------------------------------------------------------------------------
def read_vocab(name, limit=None):
    r = gguf.GGUFReader(os.path.join(root, "Tests", "Fixtures", "tokenizers", name))
    v = {k: r.fields[k].contents() for k in r.fields if k.startswith("tokenizer.")}
    if limit is not None:
        for k in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
            if k in v:
                v[k] = v[k][:limit]
    return v


def write_vocab(w, v, pre=None):
    w.add_tokenizer_model(v["tokenizer.ggml.model"])
    if pre or "tokenizer.ggml.pre" in v:
        w.add_tokenizer_pre(pre or v["tokenizer.ggml.pre"])
    w.add_token_list(v["tokenizer.ggml.tokens"])
    if "tokenizer.ggml.scores" in v:
        w.add_token_scores(v["tokenizer.ggml.scores"])
    w.add_token_types(v["tokenizer.ggml.token_type"])
    if "tokenizer.ggml.merges" in v:
        w.add_token_merges(v["tokenizer.ggml.merges"])
    for key, add in (("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id),
                     ("unknown_token_id", w.add_unk_token_id)):
        if "tokenizer.ggml." + key in v:
            add(int(v["tokenizer.ggml." + key]))
    for key, add in (("add_bos_token", w.add_add_bos_token), ("add_eos_token", w.add_add_eos_token),
                     ("add_space_prefix", w.add_add_space_prefix)):
        if "tokenizer.ggml." + key in v:
            add(bool(v["tokenizer.ggml." + key]))
    return len(v["tokenizer.ggml.tokens"])


# ---------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------
def llama3_factors(head_dim, base, factor=8.0, low=1.0, high=4.0, original=256):
    """Per-pair divisors the way Meta's llama3 scaling (and llama.cpp's converter) computes them."""
    freqs = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    out = []
    for f in freqs:
        wavelen = 2 * np.pi / f
        if wavelen < original / high:
            out.append(1.0)
        elif wavelen > original / low:
            out.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def encode(array, qtype):
    """A float32 matrix as the payload GGUFWriter expects for `qtype`."""
    if qtype == T.F32:
        return array.astype(np.float32), None
    if qtype == T.F16:
        return array.astype(np.float16), None
    return gguf.quants.quantize(array.astype(np.float32), qtype), qtype


def write_model(path, spec):
    """Writes one random llama-family model described by `spec` (see MODELS)."""
    rng = np.random.default_rng(spec["seed"])
    arch, C, L, H, Hkv, F = spec["arch"], spec["width"], spec["layers"], spec["heads"], spec["kv_heads"], spec["ffn"]
    D = C // H
    w = gguf.GGUFWriter(path, arch)
    w.add_name("tiny-" + spec["name"])
    w.add_context_length(512)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(Hkv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(spec.get("rope_base", 10000.0))
    w.add_rope_dimension_count(D)
    for key, value in spec.get("extra_kv", {}).items():
        if isinstance(value, str):
            w.add_string(f"{arch}.{key}", value)
        else:
            w.add_float32(f"{arch}.{key}", float(value))
    vocab = read_vocab(spec["vocab"], spec.get("vocab_limit"))
    V = write_vocab(w, vocab, spec.get("pre"))
    w.add_vocab_size(V)
    types = spec["types"]  # role -> GGML type: embd, attn, ffn, output

    def matrix(name, rows, cols, role, scale):
        a = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        data, raw = encode(a, types[role])
        w.add_tensor(name, data, raw_dtype=raw)

    def vector(name, n, mean, scale):
        w.add_tensor(name, (mean + rng.standard_normal(n) * scale).astype(np.float32))

    matrix("token_embd.weight", V, C, "embd", 2.5 / np.sqrt(C))
    for i in range(L):
        p = f"blk.{i}."
        vector(p + "attn_norm.weight", C, 1.0, 0.2)
        matrix(p + "attn_q.weight", H * D, C, "attn", 1.5 / np.sqrt(C))
        matrix(p + "attn_k.weight", Hkv * D, C, "attn", 1.5 / np.sqrt(C))
        matrix(p + "attn_v.weight", Hkv * D, C, "attn", 1.0 / np.sqrt(C))
        if spec.get("qkv_bias"):
            vector(p + "attn_q.bias", H * D, 0.0, 0.3)
            vector(p + "attn_k.bias", Hkv * D, 0.0, 0.3)
            vector(p + "attn_v.bias", Hkv * D, 0.0, 0.3)
        matrix(p + "attn_output.weight", C, H * D, "attn", 1.0 / np.sqrt(H * D))
        vector(p + "ffn_norm.weight", C, 1.0, 0.2)
        matrix(p + "ffn_gate.weight", F, C, "ffn", 1.5 / np.sqrt(C))
        matrix(p + "ffn_up.weight", F, C, "ffn", 1.0 / np.sqrt(C))
        matrix(p + "ffn_down.weight", C, F, "ffn", 1.0 / np.sqrt(F))
    vector("output_norm.weight", C, 1.0, 0.2)
    if spec.get("untied"):
        matrix("output.weight", V, C, "output", 2.5 / np.sqrt(C))
    if spec.get("llama3_factors"):
        w.add_tensor("rope_freqs.weight", llama3_factors(D, spec.get("rope_base", 10000.0)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize_with_llamacpp(src, dst, ftype):
    import llama_cpp as L
    params = L.llama_model_quantize_default_params()
    params.nthread = 1
    params.ftype = ftype
    rc = L.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed ({rc})")


F16_TYPES = {"embd": T.F16, "attn": T.F16, "ffn": T.F16, "output": T.F16}
F32_TYPES = {"embd": T.F32, "attn": T.F32, "ffn": T.F32, "output": T.F32}
SMALL = dict(width=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab="spm.gguf", vocab_limit=320)

MODELS = [
    dict(SMALL, name="qwen2", seed=11, arch="qwen2", vocab="bpe.gguf", vocab_limit=None, pre="qwen2",
         qkv_bias=True, rope_base=1000000.0, types=F16_TYPES,
         features="qwen2: NeoX RoPE pairs, Q/K/V biases, GQA 4/2, tied output, byte-level BPE vocabulary (1200), F16"),
    dict(SMALL, name="mistral", seed=12, arch="mistral", heads=8, kv_heads=2, types=F32_TYPES,
         features="mistral (llama.cpp reads a `llama` twin): GQA 8/2 (head 8), tied output, F32 throughout"),
    dict(SMALL, name="llama-spm", seed=13, arch="llama", vocab_limit=None, heads=4, kv_heads=4, untied=True,
         types=dict(F16_TYPES, output=T.Q8_0),
         features="llama: SentencePiece vocabulary (1600), untied output.weight (Q8_0), no GQA (4/4), F16"),
    dict(SMALL, name="llama-rope-freqs", seed=14, arch="llama", llama3_factors=True, types=F16_TYPES,
         features="llama: llama3-style rope_freqs.weight (factor 8, low 1, high 4, original context 256), F16"),
    dict(SMALL, name="llama-rope-linear", seed=15, arch="llama", types=F16_TYPES,
         extra_kv={"rope.scaling.type": "linear", "rope.scaling.factor": 2.0},
         features="llama: linear RoPE scaling, rope.scaling.type = linear, rope.scaling.factor = 2, F16"),
    dict(SMALL, name="llama-rope-scale-linear-key", seed=16, arch="llama", types=F16_TYPES,
         extra_kv={"rope.scale_linear": 2.0},
         features="llama: linear RoPE scaling through the old key rope.scale_linear = 2 (no scaling.type: "
                  "llama.cpp defaults the type to linear), F16"),
    dict(SMALL, name="q8_0", seed=17, arch="llama", types={k: T.Q8_0 for k in F16_TYPES},
         features="llama: every matrix (token_embd included) Q8_0 (gguf-py quantizer)"),
    dict(SMALL, name="q4_0", seed=18, arch="llama", types={k: T.Q4_0 for k in F16_TYPES},
         features="llama: every matrix (token_embd included) Q4_0 (gguf-py quantizer)"),
    dict(SMALL, name="q4_1", seed=19, arch="llama", types={k: T.Q4_1 for k in F16_TYPES},
         features="llama: every matrix (token_embd included) Q4_1 (gguf-py quantizer)"),
    dict(SMALL, name="q4_k_m", seed=20, arch="llama", width=256, layers=1, heads=4, kv_heads=2, ffn=256,
         types=F32_TYPES, llamacpp_ftype=15,
         features="llama, width 256: llama.cpp's Q4_K_M recipe (llama_model_quantize): Q4_K q/k/o/gate/up, "
                  "Q6_K attn_v/ffn_down/token_embd (tied output)"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oracle", default="/work/shared/oracles/oracle.py")
    ap.add_argument("--only", help="comma-separated model names (default: all)")
    a = ap.parse_args()
    os.makedirs(tiny_dir, exist_ok=True)
    os.makedirs(llamacpp_dir, exist_ok=True)
    manifest_path = os.path.join(tiny_dir, "tiny.json")
    yard_path = os.path.join(llamacpp_dir, "tiny-llamacpp.json")
    manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {"models": []}
    yard = json.load(open(yard_path)) if os.path.exists(yard_path) else {"models": []}
    only = set(a.only.split(",")) if a.only else None
    tmp = tempfile.mkdtemp(prefix="tiny-models-")
    for spec in MODELS:
        name = spec["name"]
        if only and name not in only:
            continue
        path = os.path.join(tiny_dir, name + ".gguf")
        if "llamacpp_ftype" in spec:
            src = os.path.join(tmp, name + ".f32.gguf")
            write_model(src, spec)
            quantize_with_llamacpp(src, path, spec["llamacpp_ftype"])
        else:
            write_model(path, spec)
        ref = Reference(path)
        V = ref.out.shape[0]
        rng = np.random.default_rng(1000 + spec["seed"])
        ids = [int(x) for x in rng.integers(0, V, PROMPT_LENGTH)]
        emb = (rng.standard_normal((8, ref.width)) * ref.w["token_embd.weight"].std()).astype(np.float32)
        np.save(os.path.join(tiny_dir, name + ".emb8.npy"), emb)
        exact = ref.forward(ids).astype(np.float32)
        exact_emb = ref.forward(ids, emb).astype(np.float32)
        np.save(os.path.join(tiny_dir, name + ".exact.npy"), exact)
        np.save(os.path.join(tiny_dir, name + ".exact-emb8.npy"), exact_emb)
        greedy, margins = [], []
        for _ in range(GREEDY_STEPS):
            row = ref.forward(ids + greedy)[-1]
            top = np.argsort(row)[::-1][:2]
            greedy.append(int(top[0]))
            margins.append(round(float(row[top[0]] - row[top[1]]), 6))
        types = sorted({gguf.GGMLQuantizationType(t.tensor_type).name for t in gguf.GGUFReader(path).tensors})
        entry = {"name": name, "file": name + ".gguf", "architecture": spec["arch"], "features": spec["features"],
                 "width": ref.width, "layers": ref.n_layer, "heads": ref.n_head, "kv_heads": ref.n_kv,
                 "vocab": V, "tensor_types": types, "ids": ids, "embeddings": name + ".emb8.npy",
                 "exact": name + ".exact.npy", "exact_emb8": name + ".exact-emb8.npy",
                 "greedy": {"tokens": greedy, "top2_margins": margins}}
        manifest["models"] = [m for m in manifest["models"] if m["name"] != name] + [entry]

        # llama.cpp, token positions only (the oracle returns no logits for the embedding rows)
        loadable = lc.llamacpp_loadable(path, tmp)
        lcpp = lc.oracle_logits(a.oracle, loadable, ids, None)
        lcpp_emb = lc.oracle_logits(a.oracle, loadable, ids, os.path.join(tiny_dir, name + ".emb8.npy"))
        yentry = {"name": name, "tokens": lc.position_summary(exact, lcpp),
                  "emb8": lc.position_summary(exact_emb[8:], lcpp_emb)}
        # Sanity of llama.cpp itself (a broken build would exceed these): KL from the exact reference
        # <= 1e-3 on F16/F32 models, <= 2e-2 on quantized ones (llama-spm has Q8_0 matrices).
        bound = 2e-2 if name.startswith("q") or name == "llama-spm" else 1e-3
        for part in ("tokens", "emb8"):
            if max(yentry[part]["kl"]) > bound:
                sys.exit(f"{name} {part}: llama.cpp KL {max(yentry[part]['kl'])} > {bound}; fixture not written")
        yard["models"] = [m for m in yard["models"] if m["name"] != name] + [yentry]
        s = yentry["tokens"]
        print(f"{name:30s} {os.path.getsize(path) // 1024:5d} KB  V={V}  llama.cpp vs exact: "
              f"KL max {max(s['kl']):.2e}  max abs {max(s['max_abs']):.3e}  types {types}", file=sys.stderr)
    order = [m["name"] for m in MODELS]
    manifest["models"].sort(key=lambda m: order.index(m["name"]))
    yard["models"].sort(key=lambda m: order.index(m["name"]))
    manifest["prompt"] = (f"{PROMPT_LENGTH} random ids (np.random.default_rng(1000 + seed).integers(0, V)), then 8 "
                          "embeddings N(0, std(token_embd)) from the same generator; greedy from the ids alone")
    yard["settings"] = "llama-cpp-python " + lc.llama_cpp_version() + \
        ", oracle.py defaults: 1 thread, F16 KV cache, flash attention auto" + \
        ("" if lc.EXTRA_BUFTS else ", use_extra_bufts = false (no AMX / repacked weights)") + "; emb8: split mode (embedding batch, then tokens)"
    yard["fields"] = ("per token position: llama.cpp top1 id, top2 margin (logit units), KL(exact||llama.cpp) "
                      "in nats, max abs logit difference, cosine")
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)
    with open(yard_path, "w") as f:
        json.dump(yard, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
