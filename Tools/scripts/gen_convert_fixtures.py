#!/usr/bin/env python3
"""Regenerates Tests/Fixtures/convert/: small files written by the reference tools, for ConvertTests.

* numpy_savez.npz (np.savez: stored members) and numpy_savez_compressed.npz (deflated), each with
  `alpha` float32 [2, 3] and `beta` float16 [3, 4];
* ptuning/: a P_TUNING adapter saved by PEFT from a tiny random Llama (hidden 16, 4 virtual tokens,
  MLP encoder). PEFT saves the encoder's OUTPUT (`get_prompt_embedding_to_save`), not the encoder's
  input table; `expected.json` holds that output and the input table so the test can tell them apart;
* pickle_only/: a PROMPT_TUNING adapter saved with safe_serialization=False (adapter_model.bin only);
* gguf_adapter.gguf: a soft-prompt adapter written by gguf-py's GGUFWriter from Formats/gguf-adapter.md
  alone (F16 [3 tokens, 4 wide], template, name, fingerprint fields);
* torch_bf16.safetensors: one BF16 [2, 4] tensor saved by safetensors.torch under another name.

  python3 Tools/scripts/gen_convert_fixtures.py
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests/Fixtures/convert")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    alpha = (np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5) / 4
    beta = (np.arange(12, dtype=np.float16).reshape(3, 4) * np.float16(0.375)) - np.float16(1)
    np.savez(os.path.join(OUT, "numpy_savez.npz"), alpha=alpha, beta=beta)
    np.savez_compressed(os.path.join(OUT, "numpy_savez_compressed.npz"), alpha=alpha, beta=beta)

    import torch
    from peft import PromptEncoderConfig, PromptTuningConfig, TaskType, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    base = LlamaForCausalLM(config)

    ptuning = os.path.join(OUT, "ptuning")
    shutil.rmtree(ptuning, ignore_errors=True)
    model = get_peft_model(base, PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4,
                                                     encoder_hidden_size=8))
    saved_output = model.get_prompt_embedding_to_save("default")  # what save_pretrained stores
    table = model.prompt_encoder["default"].embedding.weight.detach()
    model.save_pretrained(ptuning)
    from safetensors.torch import load_file
    stored = load_file(os.path.join(ptuning, "adapter_model.safetensors"))["prompt_embeddings"]
    assert torch.equal(stored, saved_output), "PEFT stored something else than the encoder output"
    assert not torch.allclose(stored, table), "encoder output equals its input table"
    readme = os.path.join(ptuning, "README.md")
    if os.path.exists(readme):
        os.remove(readme)

    pickle_only = os.path.join(OUT, "pickle_only")
    shutil.rmtree(pickle_only, ignore_errors=True)
    base2 = LlamaForCausalLM(config)
    pt = get_peft_model(base2, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=2))
    pt.save_pretrained(pickle_only, safe_serialization=False)
    readme = os.path.join(pickle_only, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    assert not os.path.exists(os.path.join(pickle_only, "adapter_model.safetensors"))

    import gguf
    gamma = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5) / 8
    writer = gguf.GGUFWriter(os.path.join(OUT, "gguf_adapter.gguf"), arch="llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("general.name", "gamma-task")
    writer.add_string("adapter.type", "soft_prompt")
    writer.add_uint32("adapter.soft_prompt.version", 1)
    writer.add_string("adapter.soft_prompt.placement", "prefix")
    writer.add_string("adapter.soft_prompt.template", "Q: {input}\nA:")
    writer.add_string("adapter.soft_prompt.provenance", '{"by":"gguf-py"}')
    writer.add_uint32("adapter.soft_prompt.model.embedding_length", 4)
    writer.add_uint32("adapter.soft_prompt.model.layer_count", 2)
    writer.add_uint32("adapter.soft_prompt.model.vocab_size", 64)
    writer.add_string("adapter.soft_prompt.model.tokenizer_sha256", "ab" * 32)
    writer.add_tensor("prompt_embeddings", gamma.astype(np.float16))  # numpy [3, 4] = ggml [4, 3]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    from safetensors.torch import save_file
    delta = (torch.arange(8, dtype=torch.float32).reshape(2, 4) - 3.3) / 3
    save_file({"learned_prompt": delta.to(torch.bfloat16)}, os.path.join(OUT, "torch_bf16.safetensors"))

    expected = {
        "npz": {"alpha": {"shape": list(alpha.shape), "values": alpha.flatten().tolist()},
                "beta": {"shape": list(beta.shape), "values": beta.astype(np.float32).flatten().tolist()}},
        "gguf_adapter": {"values": gamma.astype(np.float16).astype(np.float32).flatten().tolist()},
        "torch_bf16": {"values": delta.to(torch.bfloat16).float().flatten().tolist()},
        "ptuning": {"encoder_output": stored.flatten().tolist(), "encoder_input": table.flatten().tolist(),
                    "shape": list(stored.shape)},
    }
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=0)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
