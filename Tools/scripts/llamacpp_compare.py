#!/usr/bin/env python3
"""Three-way logit comparison on one model: our `softprompt generate` (float32 exact path), the float64
exact reference (Tools/scripts/exact_reference.py) and llama.cpp (through the shared oracle script,
/work/shared/oracles/oracle.py, run as a separate process; it drives llama-cpp-python).

Per prompt it prints cosine / max abs / KL of ours vs exact, llama.cpp vs exact and ours vs llama.cpp
(KL(a||b) in nats, mean and max over positions; cosine and max abs: the worst position), and how often our
top-1 agrees with llama.cpp's where llama.cpp's top-2 margin exceeds 0.5. With embeddings, ours and exact
cover every row; llama.cpp (whose oracle returns only the token rows) is compared on the token rows.

Prompt sources (one of):
  --default-prompts          the 5 prompts + the embeddings case of Tests/Fixtures/llama/smollm2-exact.json
  --tiny NAME|all            the tiny models of Tests/Fixtures/tiny/tiny.json (ids, then + 8 embeddings)
  --ids 1,2,3 [--ids ...]    explicit token ids (optionally --embeddings E.npy for all of them)
  --text "..." [--text ...]  texts, tokenized by llama.cpp (no BOS unless the model asks for it)

--semantics runs llama.cpp in float32 throughout (see the option) to check the reference's reading of
the model rather than llama.cpp's approximations.

llama.cpp runs with its extra weight buffer types off (see _NO_EXTRA_BUFTS; LLAMACPP_EXTRA_BUFTS=1 keeps
them).

--fixture OUT.json (with --default-prompts) also writes the llama.cpp yardstick for the default model:
per position llama.cpp's top-32 ids/values, its values at the exact fixture's probe ids, logsumexp,
top-2 margin, KL(exact||llama.cpp) over the full vocabulary and over the coarse partition {the exact
top-32 ids one by one, everything else} (which the Swift tests can recompute from the exact fixture), max
abs and cosine.

usage:
  swift build -c release --product softprompt --scratch-path .build-tiny
  llamacpp_compare.py -m MODEL --default-prompts --bin .build-tiny/release/softprompt
  llamacpp_compare.py --tiny all --bin .build-tiny/release/softprompt
"""
import argparse, json, os, subprocess, sys, tempfile
import numpy as np
import gguf

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))
sys.path.insert(0, here)


# ---------------------------------------------------------------------------------------------------
# metrics (float64)
# ---------------------------------------------------------------------------------------------------
def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def kl(p_logits, q_logits):
    """KL(softmax(p) || softmax(q)) per row, nats."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def cosine(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def max_abs(a, b):
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(-1)


def top2_margin(x):
    s = np.sort(np.asarray(x, np.float64), axis=-1)
    return s[..., -1] - s[..., -2]


def coarse_kl(p_logits, q_logits, ids):
    """KL over the partition {each id of `ids`, the rest}, per row (`ids`: [rows, k]); a lower bound of KL."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    out = []
    for r in range(lp.shape[0]):
        pi, qi = np.exp(lp[r, ids[r]]), np.exp(lq[r, ids[r]])
        v = float((pi * (lp[r, ids[r]] - lq[r, ids[r]])).sum())
        prest, qrest = max(0.0, 1 - pi.sum()), max(1e-300, 1 - qi.sum())
        if prest > 0:
            v += prest * np.log(prest / qrest)
        out.append(v)
    return np.asarray(out)


def position_summary(exact, lcpp):
    """llama.cpp against the exact reference, per position (rows must correspond)."""
    return {"top1": [int(i) for i in lcpp.argmax(-1)],
            "margin": [round(float(x), 5) for x in top2_margin(lcpp)],
            "kl": [float("%.4g" % x) for x in kl(exact, lcpp)],
            "max_abs": [round(float(x), 5) for x in max_abs(exact, lcpp)],
            "cosine": [round(float(x), 7) for x in cosine(exact, lcpp)]}


# ---------------------------------------------------------------------------------------------------
# llama.cpp through the shared oracle (a separate process)
# ---------------------------------------------------------------------------------------------------
def check_yardstick(cases):
    """Refuses a default-model yardstick that a broken llama.cpp build could have produced (the bounds the
    Swift tests once applied to the stored fixture): the coarse KL is a lower bound of the full one; token
    prompts KL <= 0.05 and max abs <= 3 (measured: KL <= 0.028, max abs <= 1.6); the prompt behind 8 random
    input embeddings KL <= 0.5 and max abs <= 10 (measured: KL max 0.29, max abs 5.7)."""
    for c in cases:
        embeddings = c["virtual"] != 0
        for t, p in enumerate(c["positions"]):
            if p["kl_coarse"] > p["kl"] + 1e-6:
                sys.exit(f"{c['name']} position {t}: coarse KL {p['kl_coarse']} exceeds the full KL {p['kl']}")
        kl_max = max(p["kl"] for p in c["positions"])
        abs_max = max(p["max_abs"] for p in c["positions"])
        if kl_max > (0.5 if embeddings else 0.05) or abs_max > (10 if embeddings else 3):
            sys.exit(f"{c['name']}: llama.cpp KL {kl_max}, max abs {abs_max}: beyond the sanity bounds; not written")


def llama_cpp_version():
    try:
        import llama_cpp
        return getattr(llama_cpp, "__version__", "?")
    except ImportError:
        return "absent"


def llamacpp_loadable(path, tmp):
    """`path`, or a copy relabelled `llama` when its architecture is one llama.cpp does not know but
    runs as llama (`mistral`: llama.cpp's converter writes Mistral models as `llama`)."""
    r = gguf.GGUFReader(path)
    arch = r.fields["general.architecture"].contents()
    if arch != "mistral":
        return path
    out = os.path.join(tmp, os.path.basename(path).replace(".gguf", ".as-llama.gguf"))
    w = gguf.GGUFWriter(out, "llama")
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        name = "llama." + key[len(arch) + 1:] if key.startswith(arch + ".") else key
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, f.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        w.add_tensor(t.name, np.asarray(t.data), raw_shape=[int(x) for x in t.shape[::-1]],
                     raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


# Runs the oracle with llama.cpp's extra weight buffer types (AMX, repacked layouts) switched off: on this
# machine (a VM whose CPU reports AMX) the AMX kernels of the llama-cpp-python build die with SIGILL on
# every quantized model. Without them llama.cpp takes its ordinary CPU path (vec_dot over Q8 activations).
_NO_EXTRA_BUFTS = ("import runpy, sys, llama_cpp as L\n"
                   "_d = L.llama_model_default_params\n"
                   "def _p():\n    p = _d(); p.use_extra_bufts = False; return p\n"
                   "L.llama_model_default_params = _p\n"
                   "sys.argv = sys.argv[1:]\n"
                   "runpy.run_path(sys.argv[0], run_name='__main__')\n")
EXTRA_BUFTS = os.environ.get("LLAMACPP_EXTRA_BUFTS") == "1"


def oracle_command(oracle):
    return [sys.executable, oracle] if EXTRA_BUFTS else [sys.executable, "-c", _NO_EXTRA_BUFTS, oracle]


def oracle_logits(oracle, model, ids, embeddings, threads=1, kv_type="f16", flash_attn="auto"):
    """llama.cpp's logits of the token positions, [len(ids), V]."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "l.npy")
        ids_s = ",".join(str(i) for i in ids)
        common = ["-m", model, "--ids", ids_s, "--out", out, "--threads", str(threads), "--kv-type", kv_type,
                  "--flash-attn", flash_attn]
        if embeddings is None:
            cmd = oracle_command(oracle) + ["logits"] + common
        else:
            cmd = oracle_command(oracle) + ["softprompt", "--prompt", embeddings, "--mode", "split"] + common
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return np.load(out).astype(np.float64)


def f32_twin(path, tmp):
    """A copy of `path` with every tensor dequantized to F32 (gguf-py), for --semantics."""
    out = os.path.join(tmp, os.path.basename(path).replace(".gguf", ".f32.gguf"))
    if os.path.exists(out):
        return out
    r = gguf.GGUFReader(path)
    w = gguf.GGUFWriter(out, r.fields["general.architecture"].contents())
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = f.types[0]
        w.add_key_value(key, f.contents(), vtype, sub_type=f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None)
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a.reshape([int(x) for x in t.shape[::-1]]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def oracle_tokenize(oracle, model, text):
    out = subprocess.run(oracle_command(oracle) + ["tokenize", "-m", model, "--text", text, "--ids-only"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------
# ours
# ---------------------------------------------------------------------------------------------------
def ours_logits(binary, model, ids, embeddings, threads=1):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ours.npy")
        cmd = [binary, "generate", "-m", model, "--ids", ",".join(str(i) for i in ids), "-n", "1",
               "--threads", str(threads), "--logits-out", out]
        if embeddings is not None:
            cmd += ["--embeddings", embeddings]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return np.load(out).astype(np.float64)


# ---------------------------------------------------------------------------------------------------
def compare_one(name, model, ids, embeddings, ref, a, tmp):
    """Returns a dict of metrics and the arrays, printing nothing."""
    emb = np.load(embeddings) if embeddings else None
    nv = 0 if emb is None else emb.shape[0]
    exact = ref.forward(ids, emb)
    if a.semantics:  # llama.cpp in float32 throughout: any difference left is a difference of meaning
        lcpp = oracle_logits(a.oracle, llamacpp_loadable(f32_twin(model, tmp), tmp), ids, embeddings,
                             kv_type="f32", flash_attn="off")
    else:
        lcpp = oracle_logits(a.oracle, llamacpp_loadable(model, tmp), ids, embeddings, kv_type=a.kv_type)
    ours = ours_logits(a.bin, model, ids, embeddings, a.threads) if a.bin else None
    row = {"name": name, "n": len(ids), "virtual": nv}

    def trio(x, y):
        k = kl(x, y)
        return {"cos": float(cosine(x, y).min()), "max_abs": float(max_abs(x, y).max()),
                "kl_mean": float(k.mean()), "kl_max": float(k.max())}
    row["llamacpp_vs_exact"] = trio(exact[nv:], lcpp)
    if ours is not None:
        row["ours_vs_exact"] = trio(exact, ours)
        row["ours_vs_llamacpp"] = trio(lcpp, ours[nv:])
        confident = top2_margin(lcpp) > 0.5
        row["top1_checked"] = int(confident.sum())
        row["top1_agree"] = int((ours[nv:].argmax(-1) == lcpp.argmax(-1))[confident].sum())
    return row, exact, lcpp


def fmt(t):
    return f"{t['cos']:.6f} {t['max_abs']:8.2e} {t['kl_mean']:8.2e} {t['kl_max']:8.2e}"


def print_header():
    h = "cos(min)  maxabs   KLmean   KLmax  "
    print(f"{'prompt':34s} {'T':>3s} | ours vs exact: {h}| llama.cpp vs exact: {h}| ours vs llama.cpp: {h}| top1 (m>0.5)")


def print_table(rows):
    for r in rows:
        o = fmt(r["ours_vs_exact"]) if "ours_vs_exact" in r else "-"
        ol = fmt(r["ours_vs_llamacpp"]) if "ours_vs_llamacpp" in r else "-"
        agree = f"{r['top1_agree']}/{r['top1_checked']}" if "top1_checked" in r else "-"
        print(f"{r['name']:34s} {r['virtual'] + r['n']:3d} | {'':15s}{o} | {'':20s}{fmt(r['llamacpp_vs_exact'])} | "
              f"{'':18s}{ol} | {agree}")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", help="GGUF model (default: the default model)")
    ap.add_argument("--bin", help="our softprompt binary (omit to compare only llama.cpp with exact)")
    ap.add_argument("--oracle", default="/work/shared/oracles/oracle.py")
    ap.add_argument("--threads", type=int, default=1, help="threads for our binary")
    ap.add_argument("--kv-type", default="f16", choices=["f16", "f32", "q8_0"], help="llama.cpp KV cache type")
    ap.add_argument("--semantics", action="store_true",
                    help="run llama.cpp on an F32 copy of the model with an F32 KV cache and flash attention off: "
                         "it then computes in float32 throughout, so it must meet the exact reference to ~1e-5 "
                         "(checks that the reference reads every architecture feature as llama.cpp does)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--default-prompts", action="store_true")
    src.add_argument("--tiny")
    src.add_argument("--ids", action="append")
    src.add_argument("--text", action="append")
    ap.add_argument("--embeddings", help="with --ids/--text: .npy [n, width] prepended to every prompt")
    ap.add_argument("--fixture", help="with --default-prompts: write the llama.cpp yardstick JSON here")
    ap.add_argument("--json", help="also write the table rows as JSON here")
    a = ap.parse_args()
    if a.bin and not os.path.isfile(a.bin):
        sys.exit(f"no binary at {a.bin} (swift build -c release --product softprompt --scratch-path .build-tiny)")
    from exact_reference import Reference
    tmp = tempfile.mkdtemp(prefix="llamacpp-compare-")
    rows = []
    print_header()
    if a.tiny:
        manifest = json.load(open(os.path.join(root, "Tests", "Fixtures", "tiny", "tiny.json")))
        for m in manifest["models"]:
            if a.tiny != "all" and m["name"] not in a.tiny.split(","):
                continue
            path = os.path.join(root, "Tests", "Fixtures", "tiny", m["file"])
            ref = Reference(path)
            emb = os.path.join(root, "Tests", "Fixtures", "tiny", m["embeddings"])
            for name, e in ((m["name"], None), (m["name"] + "+emb8", emb)):
                rows.append(compare_one(name, path, m["ids"], e, ref, a, tmp)[0])
                print_table(rows[-1:])
    else:
        model = a.model or os.path.expanduser("~/.cache/softpromptkit/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        ref = Reference(model)
        if a.default_prompts:
            fx = json.load(open(os.path.join(root, "Tests", "Fixtures", "llama", "smollm2-exact.json")))
            cases = [(c["name"], c["ids"], os.path.join(root, "Tests", "Fixtures", "llama", c["embeddings"])
                      if c["embeddings"] else None) for c in fx["cases"]]
        elif a.ids:
            cases = [(f"ids{i}", [int(x) for x in s.split(",")], a.embeddings) for i, s in enumerate(a.ids)]
        else:
            cases = [(t[:30], oracle_tokenize(a.oracle, model, t), a.embeddings) for t in a.text]
        yard = []
        for name, ids, e in cases:
            row, exact, lcpp = compare_one(name, model, ids, e, ref, a, tmp)
            rows.append(row)
            print_table(rows[-1:])
            if a.fixture:
                nv = exact.shape[0] - lcpp.shape[0]
                ex = exact[nv:]
                exact_case = next(c for c in fx["cases"] if c["name"] == name)
                top_exact = np.asarray([p["top_ids"] for p in exact_case["positions"]])[nv:]
                positions = []
                for t in range(lcpp.shape[0]):
                    l = lcpp[t]
                    top = np.argsort(l)[::-1][:32]
                    m = l.max()
                    positions.append({
                        "top_ids": [int(i) for i in top], "top_values": [round(float(l[i]), 5) for i in top],
                        "probe_values": [round(float(l[i]), 5) for i in fx["probe_ids"]],
                        "logsumexp": round(float(m + np.log(np.exp(l - m).sum())), 6),
                        "margin": round(float(top2_margin(l)), 5),
                        "kl": float("%.5g" % kl(ex[t:t + 1], l[None])[0]),
                        "kl_coarse": float("%.5g" % coarse_kl(ex[t:t + 1], l[None], top_exact[t:t + 1])[0]),
                        "max_abs": round(float(max_abs(ex[t], l)), 5),
                        "cosine": round(float(cosine(ex[t], l)), 7)})
                yard.append({"name": name, "ids": ids, "virtual": nv, "positions": positions})
        if a.fixture:
            check_yardstick(yard)
            with open(a.fixture, "w") as f:
                json.dump({"model_sha256": fx["model_sha256"], "probe_ids": fx["probe_ids"],
                           "settings": "llama-cpp-python " + llama_cpp_version() + ", oracle.py: 1 thread, "
                           + a.kv_type.upper() + " KV cache, flash attention auto; embeddings: split mode, "
                           "token rows only (positions index the token rows)",
                           "cases": yard}, f, separators=(",", ":"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
