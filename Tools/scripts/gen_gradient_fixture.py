#!/usr/bin/env python3
"""Whole-model gradient oracle for prompt tuning: PyTorch (transformers loading the same GGUF, i.e. the same
dequantized weights) in float64, with RMSNorm and the RoPE tables patched to float64 too. A soft prompt P
(n_virtual rows) is prepended as input embeddings before the tokens; the loss is the mean next-token
cross-entropy on the target tokens; the fixture holds the loss, the per-target losses and d(loss)/dP.

usage: Tools/scripts/gen_gradient_fixture.py [MODEL]   (needs torch, transformers, gguf, numpy)
"""
import json, os, subprocess, sys
import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
model_path = sys.argv[1] if len(sys.argv) > 1 else subprocess.check_output([os.path.join(here, "bootstrap.sh")], text=True).strip()
out_dir = os.path.join(here, "..", "..", "Tests", "Fixtures", "gradient")
os.makedirs(out_dir, exist_ok=True)

from transformers import AutoModelForCausalLM  # noqa: E402
import transformers.models.llama.modeling_llama as ml  # noqa: E402

torch.set_grad_enabled(True)
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(model_path), gguf_file=os.path.basename(model_path),
                                             torch_dtype=torch.float64)
model.eval()


class RMSNorm64(torch.nn.Module):  # float64 all the way (transformers casts to float32 inside)
    def __init__(self, weight, eps):
        super().__init__()
        self.weight, self.eps = weight, eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


for name, module in list(model.named_modules()):
    if type(module).__name__ == "LlamaRMSNorm":
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], RMSNorm64(module.weight, module.variance_epsilon))
rotary = model.model.rotary_emb
rotary.inv_freq = rotary.inv_freq.to(torch.float64)
rotary.original_inv_freq = rotary.inv_freq


def rope64(self, x, position_ids):
    freqs = position_ids[:, :, None].to(torch.float64) * self.inv_freq[None, None, :].to(torch.float64)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


rotary.forward = rope64.__get__(rotary)

rng = np.random.default_rng(7)
E = model.get_input_embeddings().weight.detach()
n_virtual = 8
# A prompt initialised from vocabulary rows plus noise, like a trained one.
P0 = (E[rng.choice(E.shape[0], n_virtual)] + 0.01 * torch.tensor(rng.standard_normal((n_virtual, E.shape[1])))).to(torch.float32)
ids = [504, 3575, 282, 4649, 314, 7042, 30, 198, 198, 504, 2988]
targets = [(n_virtual + i, ids[i + 1]) for i in range(5, len(ids) - 1)]  # rows predicting the next token

P = P0.to(torch.float64).clone().requires_grad_(True)
x = torch.cat([P, E[torch.tensor(ids)]], 0)[None]
T = max(r for r, _ in targets) + 1
logits = model(inputs_embeds=x[:, :T]).logits[0]
rows = torch.tensor([r for r, _ in targets])
toks = torch.tensor([t for _, t in targets])
per = torch.nn.functional.cross_entropy(logits[rows], toks, reduction="none")
loss = per.mean()
loss.backward()

np.save(os.path.join(out_dir, "prompt8.npy"), P0.numpy())
with open(os.path.join(out_dir, "smollm2-gradient.json"), "w") as f:
    json.dump({"ids": ids, "targets": [[r, t] for r, t in targets], "loss": loss.item(),
               "target_losses": per.tolist(), "gradient": P.grad.numpy().astype(np.float64).ravel().tolist(),
               "shape": list(P.grad.shape), "oracle": "transformers %s float64 (RMSNorm, RoPE patched to float64)"
               % __import__("transformers").__version__}, f, separators=(",", ":"))
print("loss", loss.item(), "grad norm", P.grad.norm().item())
