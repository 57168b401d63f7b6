#!/usr/bin/env python3
"""Oracle values for the trainer's optimiser pieces, from PyTorch and transformers.

Writes Tests/Fixtures/training/optimizer.json:
  - learning rates of transformers' get_{cosine,linear,constant}_schedule_with_warmup at every step
    (and cosine with a minimum rate via get_cosine_with_min_lr_schedule_with_warmup);
  - torch.optim.AdamW parameters after several updates with given gradients (float32);
  - torch.nn.utils.clip_grad_norm_ on a gradient (norm returned and clipped values).
Run: python3 Tools/scripts/gen_training_fixtures.py
"""
import json, os, sys
import numpy as np
import torch
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup)

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = os.path.join(root, "Tests", "Fixtures", "training", "optimizer.json")

def rates(make, steps, peak=0.3, **kw):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=peak)
    sched = make(opt, **kw)
    got = []
    for _ in range(steps):
        got.append(opt.param_groups[0]["lr"])
        opt.step(); sched.step()
    return got

schedules = [
    {"decay": "cosine", "peak": 0.3, "warmup": 5, "total": 23, "min": 0.0,
     "rates": rates(get_cosine_schedule_with_warmup, 23, num_warmup_steps=5, num_training_steps=23)},
    {"decay": "linear", "peak": 0.3, "warmup": 4, "total": 17, "min": 0.0,
     "rates": rates(get_linear_schedule_with_warmup, 17, num_warmup_steps=4, num_training_steps=17)},
    {"decay": "constant", "peak": 0.3, "warmup": 3, "total": 9, "min": 0.0,
     "rates": rates(get_constant_schedule_with_warmup, 9, num_warmup_steps=3)},
    {"decay": "cosine", "peak": 0.3, "warmup": 0, "total": 11, "min": 0.03,
     "rates": rates(get_cosine_with_min_lr_schedule_with_warmup, 11, num_warmup_steps=0, num_training_steps=11, min_lr=0.03)},
]

rng = np.random.default_rng(7)
n = 37
init = rng.standard_normal(n).astype(np.float32)
grads = [rng.standard_normal(n).astype(np.float32) * s for s in (1.0, 0.1, 3.0, 0.5, 2.0, 1e-3)]
lrs = [0.0, 0.05, 0.3, 0.2, 0.1, 0.01]
p = torch.nn.Parameter(torch.tensor(init))
opt = torch.optim.AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, foreach=False)
for g, lr in zip(grads, lrs):
    opt.param_groups[0]["lr"] = lr
    p.grad = torch.tensor(g)
    opt.step()
adam = {"weight_decay": 0.01, "init": init.tolist(), "grads": [g.tolist() for g in grads], "lrs": lrs,
        "final": p.detach().numpy().astype(np.float32).tolist()}

g = torch.nn.Parameter(torch.zeros(n))
g.grad = torch.tensor(grads[2])
norm = torch.nn.utils.clip_grad_norm_([g], max_norm=1.0)
clip = {"grad": grads[2].tolist(), "max_norm": 1.0, "norm": float(norm), "clipped": g.grad.numpy().tolist()}

os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump({"generator": "Tools/scripts/gen_training_fixtures.py", "torch": torch.__version__,
               "schedules": schedules, "adamw": adam, "clip": clip}, f, indent=1)
print("wrote", out)
