#!/usr/bin/env python3
"""Checks `softprompt attach` against unmodified llama.cpp (llama-cpp-python) and transformers.

For a prompt P baked into BAKED.gguf as tokens FIRST..FIRST+N-1:
  llama.cpp, ORIGINAL.gguf, P fed as embeddings (llama_batch.embd), then the text tokens
  vs llama.cpp, BAKED.gguf, the new token ids then the text tokens
compares the logits of the text positions over the original vocabulary (cosine, max abs difference),
the greedy continuations, and how far below the top logit the new tokens' logits stay. The same with
transformers (float32) on a Hugging Face directory: inputs_embeds on the original vs the new token ids
on the baked directory (when --hf-original / --hf-baked are given). Writes a small JSON summary.

llama.cpp's AMX / repacked weight buffers die with SIGILL on this machine's CPU for quantized models:
the script switches extra buffer types off (use_extra_bufts = false), as llamacpp_compare.py does.

usage: bake_check.py --oracle ../shared/oracles/oracle.py --original M.gguf --baked B.gguf \
           --prompt P.npy [--stored-prompt S.npy] --first ID --text "Name: Olga\\nLanguage:" --out result.json
"""
import argparse
import importlib.util
import json
import sys

import numpy as np


def load_oracle(path):
    import llama_cpp as L
    default = L.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    L.llama_model_default_params = params
    spec = importlib.util.spec_from_file_location("oracle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, L


def compare(a, b):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    cos = [float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y))) for x, y in zip(a, b)]
    return {"cosine_min": min(cos), "max_abs": float(np.abs(a - b).max()),
            "argmax_equal": bool((a.argmax(1) == b.argmax(1)).all())}


def ours(binary, model, ids, embeddings, n_new, extra):
    """Our runtime: logits of every prompt position and the greedy text (softprompt generate)."""
    import os
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "l.npy")
        cmd = [binary, "generate", "-m", model, "--ids", ",".join(map(str, ids)), "-n", str(n_new),
               "--logits-out", out, "--temp", "0"] + extra
        if embeddings:
            cmd += ["--embeddings", embeddings]
        text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return np.load(out).astype(np.float64), text[:-1] if text.endswith("\n") else text  # the CLI ends the line


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oracle", required=True)
    ap.add_argument("--original", required=True)
    ap.add_argument("--baked", required=True)
    ap.add_argument("--prompt", required=True, help="the prompt vectors (.npy [n, width] float32)")
    ap.add_argument("--stored-prompt", help="the rows as stored in the baked token_embd (when rounded)")
    ap.add_argument("--first", type=int, required=True, help="id of the first baked token")
    ap.add_argument("--text", action="append", required=True, help="text after the prompt (repeatable)")
    ap.add_argument("-n", type=int, default=16, help="greedy tokens")
    ap.add_argument("--softprompt", help="our CLI binary: also compare our runtime (exact and --int8)")
    ap.add_argument("--hf-original")
    ap.add_argument("--hf-baked")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    oracle, L = load_oracle(args.oracle)
    prompt = np.load(args.prompt).astype(np.float32)
    stored = np.load(args.stored_prompt).astype(np.float32) if args.stored_prompt else prompt
    n = prompt.shape[0]
    new_ids = list(range(args.first, args.first + n))
    orig = oracle.Oracle(args.original)
    baked = oracle.Oracle(args.baked)
    V = orig.n_vocab
    result = {"llama_cpp": getattr(L, "__version__", "?"), "settings": "1 thread, F16 KV, use_extra_bufts=false",
              "n_virtual": n, "first_id": args.first, "cases": []}
    ours_exact = {}
    for text in args.text:
        ids = orig.tokenize(text, False, False)
        case = {"text": text, "ids": ids}
        via_embd = orig.softprompt_logits(prompt, ids, mode="split")
        via_embd_stored = orig.softprompt_logits(stored, ids, mode="split")
        via_tokens = baked.logits(new_ids + ids)[n:]
        names = "".join(baked.piece(t) for t in new_ids)
        case["llama_cpp_tokenizer_parses_new_tokens"] = baked.tokenize(names + text, False, True)[:n] == new_ids
        case["llama_cpp_exact_vectors_vs_baked"] = compare(via_embd, via_tokens[:, :V])
        case["llama_cpp_stored_rows_vs_baked"] = compare(via_embd_stored, via_tokens[:, :V])
        top = via_tokens[:, :V].max(1)
        case["new_token_logit_max"] = float(via_tokens[:, V:].max())
        case["new_token_margin_below_top_min"] = float((top - via_tokens[:, V:].max(1)).min())
        g_embd = orig.greedy(ids, args.n, prompt=prompt)["generated_ids"]
        g_baked = baked.greedy(new_ids + ids, args.n)["generated_ids"]
        case["greedy_embeddings"] = g_embd
        case["greedy_baked"] = g_baked
        case["greedy_equal"] = g_embd == g_baked
        case["greedy_text"] = orig.detokenize(g_embd)
        case["baked_generates_new_tokens"] = any(t >= V for t in g_baked)
        if args.softprompt:
            for mode, extra in (("exact", []), ("int8", ["--int8"])):
                ours_baked, g1 = ours(args.softprompt, args.baked, new_ids + ids, None, args.n, extra)
                if mode == "exact":
                    ours_exact[text] = ours_baked[n:, :V]
                ours_embd, g2 = ours(args.softprompt, args.original, ids, args.prompt, args.n, extra)
                case["ours_" + mode] = {
                    "baked_vs_embeddings": compare(ours_embd[n:], ours_baked[n:, :V]),
                    "baked_vs_llama_cpp_baked": compare(ours_baked[n:, :V], via_tokens[:, :V]),
                    "greedy_text_baked": g1, "greedy_text_embeddings": g2,
                    "greedy_equal_llama_cpp": g1 == case["greedy_text"] and g2 == case["greedy_text"],
                    "new_token_margin_below_top_min": float((ours_baked[n:, :V].max(1) - ours_baked[n:, V:].max(1)).min()),
                }
        result["cases"].append(case)

    if args.hf_original and args.hf_baked:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained(args.hf_original)
        m0 = AutoModelForCausalLM.from_pretrained(args.hf_original, dtype=torch.float32)
        m1 = AutoModelForCausalLM.from_pretrained(args.hf_baked, dtype=torch.float32)
        tok1 = AutoTokenizer.from_pretrained(args.hf_baked)
        hf = []
        with torch.no_grad():
            for text in args.text:
                ids = tok(text, add_special_tokens=False).input_ids
                e0 = m0.get_input_embeddings()(torch.tensor([ids]))
                x0 = torch.cat([torch.from_numpy(stored)[None], e0], 1)
                l0 = m0(inputs_embeds=x0).logits[0, n:].numpy()
                baked_text = "".join(tok1.convert_ids_to_tokens(new_ids)) + text
                ids1 = tok1(baked_text, add_special_tokens=False).input_ids
                l1 = m1(torch.tensor([ids1])).logits[0, n:].numpy()
                c = compare(l0, l1[:, :l0.shape[1]])
                c["tokenizer_parses_new_tokens"] = ids1[:n] == new_ids
                c["new_token_margin_below_top_min"] = float((l1[:, :l0.shape[1]].max(1) - l1[:, l0.shape[1]:].max(1)).min())
                if text in ours_exact:
                    c["ours_exact_baked_vs_transformers_baked"] = compare(ours_exact[text], l1[:, :l0.shape[1]])
                hf.append(c)
        result["transformers"] = hf
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
