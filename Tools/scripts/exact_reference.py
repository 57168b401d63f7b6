#!/usr/bin/env python3
"""Exact reference forward pass for llama-family GGUF models: float64 numpy over the weights that the
`gguf` package dequantizes, with unquantized activations. It is the yardstick our float32 path is judged
against (and llama.cpp, which quantizes activations to 8 bits, is judged by the same yardstick).

Covers what the inference core supports: architectures llama / mistral (adjacent RoPE pairs) and qwen2
(NeoX pairs, Q/K/V biases), GQA, RMSNorm, SwiGLU, tied or separate output head, linear RoPE scaling and
llama3 frequency factors (`rope_freqs.weight`), both read as llama.cpp reads them, input embeddings
prepended before the tokens.

usage:
  exact_reference.py -m MODEL.gguf --ids 1,2,3 [--embeddings E.npy] --out logits.npy
  exact_reference.py -m MODEL.gguf --ids 1,2,3 --greedy 32 --out tokens.json
"""
import argparse, json
import numpy as np
import gguf


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    return v


class Reference:
    def __init__(self, path):
        r = gguf.GGUFReader(path)
        arch = field(r, "general.architecture")
        if arch not in ("llama", "mistral", "qwen2"):
            raise SystemExit(f"unsupported architecture {arch}")
        k = lambda name, d=None: field(r, f"{arch}.{name}", d)
        self.n_layer = int(k("block_count"))
        self.width = int(k("embedding_length"))
        self.n_head = int(k("attention.head_count"))
        self.n_kv = int(k("attention.head_count_kv", self.n_head))
        self.eps = float(k("attention.layer_norm_rms_epsilon"))
        self.head = self.width // self.n_head
        self.rope_dims = int(k("rope.dimension_count", self.head))
        base = float(k("rope.freq_base", 10000.0))
        # As llama.cpp reads them: the scaling type defaults to linear, and the factor comes from
        # rope.scaling.factor or else the older key rope.scale_linear (0 or absent: no scaling).
        scaling = k("rope.scaling.type", "linear")
        if scaling not in ("none", "linear"):
            raise SystemExit(f"unsupported RoPE scaling {scaling}")
        factor = k("rope.scaling.factor")
        factor = float((k("rope.scale_linear", 0.0) if factor is None else factor) or 1.0)
        self.neox = arch == "qwen2"
        self.w = {}
        for t in r.tensors:
            a = gguf.quants.dequantize(t.data, t.tensor_type)
            self.w[t.name] = np.asarray(a, dtype=np.float64).reshape([int(x) for x in t.shape[::-1]])
        inv = base ** (-np.arange(0, self.rope_dims, 2, dtype=np.float64) / self.rope_dims)
        if scaling == "linear" and factor != 1.0:
            inv = inv / factor
        if "rope_freqs.weight" in self.w:
            inv = inv / self.w["rope_freqs.weight"].reshape(-1)
        self.inv = inv
        self.out = self.w.get("output.weight", self.w["token_embd.weight"])

    def norm(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):  # x: (T, heads, head)
        ang = pos[:, None] * self.inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        y = x.copy()
        half = self.rope_dims // 2
        if self.neox:
            a, b = x[..., :half], x[..., half:self.rope_dims]
            y[..., :half] = a * c - b * s
            y[..., half:self.rope_dims] = a * s + b * c
        else:
            a, b = x[..., 0:self.rope_dims:2], x[..., 1:self.rope_dims:2]
            y[..., 0:self.rope_dims:2] = a * c - b * s
            y[..., 1:self.rope_dims:2] = a * s + b * c
        return y

    def linear(self, name, x):
        y = x @ self.w[name + ".weight"].T
        if name + ".bias" in self.w:
            y = y + self.w[name + ".bias"]
        return y

    def forward(self, ids, embeddings=None):
        x = self.w["token_embd.weight"][np.asarray(ids, dtype=np.int64)]
        if embeddings is not None:
            x = np.concatenate([embeddings.astype(np.float64), x], axis=0)
        T = x.shape[0]
        pos = np.arange(T, dtype=np.float64)
        mask = np.triu(np.full((T, T), -np.inf), 1)
        g = self.n_head // self.n_kv
        for i in range(self.n_layer):
            p = f"blk.{i}."
            h = self.norm(x, self.w[p + "attn_norm.weight"])
            q = self.rope(self.linear(p + "attn_q", h).reshape(T, self.n_head, self.head), pos)
            kk = self.rope(self.linear(p + "attn_k", h).reshape(T, self.n_kv, self.head), pos)
            v = self.linear(p + "attn_v", h).reshape(T, self.n_kv, self.head)
            kk = np.repeat(kk, g, axis=1)
            v = np.repeat(v, g, axis=1)
            s = np.einsum("thd,shd->hts", q, kk) / np.sqrt(self.head) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = np.einsum("hts,shd->thd", s, v).reshape(T, self.width)
            x = x + self.linear(p + "attn_output", a)
            h = self.norm(x, self.w[p + "ffn_norm.weight"])
            gate = self.linear(p + "ffn_gate", h)
            up = self.linear(p + "ffn_up", h)
            x = x + self.linear(p + "ffn_down", gate / (1 + np.exp(-gate)) * up)
        x = self.norm(x, self.w["output_norm.weight"])
        return x @ self.out.T


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--embeddings", help="float32 .npy [n, width] prepended before the tokens")
    ap.add_argument("--greedy", type=int, default=0, help="greedy-decode N tokens; writes JSON")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ref = Reference(a.model)
    ids = [int(t) for t in a.ids.replace(" ", ",").split(",") if t]
    emb = np.load(a.embeddings) if a.embeddings else None
    if a.greedy:
        out, margins = [], []
        for _ in range(a.greedy):
            logits = ref.forward(ids + out, emb)[-1]
            top = np.argsort(logits)[::-1][:2]
            out.append(int(top[0]))
            margins.append(float(logits[top[0]] - logits[top[1]]))
        json.dump({"prompt": ids, "tokens": out, "top2_margins": margins}, open(a.out, "w"))
    else:
        np.save(a.out, ref.forward(ids, emb).astype(np.float32))


if __name__ == "__main__":
    main()
