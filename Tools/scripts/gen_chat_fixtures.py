#!/usr/bin/env python3
"""Chat-template fixtures for Tests/ChatTemplatesTests/ChatTemplateTests.swift.

Every committed template (Tests/Fixtures/chat/templates/NAME.jinja) is rendered by transformers' own
`render_jinja_template` (jinja2 ImmutableSandboxedEnvironment, trim_blocks + lstrip_blocks,
`raise_exception`, `strftime_now`, `tojson`), exactly as `tokenizer.apply_chat_template(..., tokenize=False)`
does, over a fixed set of conversations, with and without the generation prompt. The outputs (or the
error a template raises) go to Tests/Fixtures/chat/renders.json; our Swift renderer must reproduce every
output byte for byte and throw wherever jinja2 raised.

Usage:
  gen_chat_fixtures.py                      # render the committed templates
  gen_chat_fixtures.py --extract \\
      --ov-configs tokenizer_configs.py \\
      --gguf ~/.cache/softpromptkit/models/SmolLM2-135M-Instruct.Q4_1.gguf
                                            # first re-extract the template strings from their sources

Needs: pip install transformers jinja2 (transformers >= 4.45 without torch is enough); gguf for --extract.
The sources are described in Tests/Fixtures/chat/README.md.
"""
import argparse
import importlib.util
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "chat")

# name, family, source kind, source key, bos, eos, extra template variables
TEMPLATES = [
    ("smollm2-135m-instruct", "chatml", "gguf", "tokenizer.chat_template", "<|im_start|>", "<|im_end|>", {}),
    ("chatml-openhermes", "chatml", "ov", "Felladrin/Llama-68M-Chat-v1", "<|im_start|>", "<|im_end|>", {}),
    ("nous-hermes-2-mixtral-8x7b-dpo", "chatml", "ov", "NousResearch/Nous-Hermes-2-Mixtral-8x7B-DPO", "<s>", "<|im_end|>", {}),
    ("qwen1.5-0.5b", "chatml", "ov", "Qwen/Qwen1.5-0.5B", "", "<|endoftext|>", {}),
    ("qwen2-7b-instruct", "chatml", "ov", "Qwen/Qwen2-7B-Instruct", "", "<|im_end|>", {}),
    ("qwen2.5-3b-instruct", "chatml", "ov", "Qwen/Qwen2.5-3B-Instruct", "", "<|im_end|>", {}),
    ("meta-llama-3-8b-instruct", "llama3", "ov", "meta-llama/Meta-Llama-3-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>", {}),
    ("llama-3.1-8b-instruct", "llama3", "ov", "meta-llama/Llama-3.1-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>", {}),
    ("llama-3.2-3b-instruct", "llama3", "ov", "meta-llama/Llama-3.2-3B-Instruct", "<|begin_of_text|>", "<|eot_id|>",
     {"date_string": "05 Mar 2025"}),
    ("llama-2-7b-chat", "llama2", "ov", "meta-llama/Llama-2-7b-chat-hf", "<s>", "</s>", {}),
    ("codellama-34b-instruct", "llama2", "ov", "codellama/CodeLlama-34b-Instruct-hf", "<s>", "</s>", {}),
    ("mistral-legacy", "mistral", "ov", "TheBloke/Mixtral-8x7B-Instruct-v0.1-GPTQ", "<s>", "</s>", {}),
    ("mistral-legacy-space", "mistral", "ov", "TheBloke/Mistral-7B-Instruct-v0.1-GPTQ", "<s>", "</s>", {}),
    ("mistral-7b-instruct-v0.1", "mistral", "ov", "mistralai/Mistral-7B-Instruct-v0.1", "<s>", "</s>", {}),
    ("mistral-7b-instruct-v0.3", "mistral", "ov", "mistralai/Mistral-7B-Instruct-v0.3", "<s>", "</s>", {}),
    ("mistral-nemo-instruct-2407", "mistral", "ov", "mistralai/Mistral-Nemo-Instruct-2407", "<s>", "</s>", {}),
    ("tinyllama-1.1b-chat-v1.0", "zephyr", "ov", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "<s>", "</s>", {}),
    ("gemma-2b-it", "gemma", "ov", "google/gemma-2b-it", "<bos>", "<eos>", {}),
    ("gemma-3-1b-it", "gemma", "ov", "google/gemma-3-1b-it", "<bos>", "<eos>", {}),
    ("hebrew-gemma-11b-v2", "gemma", "ov", "yam-peleg/Hebrew-Gemma-11B-V2", "<bos>", "<eos>", {}),
    ("phi-3-mini-4k-instruct", "phi3", "ov", "microsoft/Phi-3-mini-4k-instruct", "<s>", "<|endoftext|>", {}),
    ("phi-3.5-mini-instruct", "phi3", "ov", "microsoft/Phi-3.5-mini-instruct", "<s>", "<|endoftext|>", {}),
    ("phi-3-medium-128k-instruct", "phi3", "ov", "microsoft/Phi-3-medium-128k-instruct", "<s>", "<|endoftext|>", {}),
    ("phi-3-small-8k-instruct", "phi3", "ov", "microsoft/Phi-3-small-8k-instruct", "<|endoftext|>", "<|endoftext|>", {}),
    ("phi-3-vision-128k-instruct", "phi3", "ov", "microsoft/Phi-3-vision-128k-instruct", "<s>", "<|endoftext|>", {}),
    ("phi3-tiny-random", "phi3", "ov", "optimum-intel-internal-testing/tiny-random-Phi3ForCausalLM", "<s>", "<|endoftext|>", {}),
]

# Templates that do not belong to any supported family: recognition must refuse them.
UNSUPPORTED = [
    ("minicpm-2b-sft", "openbmb/MiniCPM-2B-sft-fp32"),
    ("dbrx-instruct", "databricks/dbrx-instruct"),
    ("deepseek-coder-6.7b-instruct", "deepseek-ai/deepseek-coder-6.7b-instruct"),
    ("zephyr-7b-gemma-sft", "HuggingFaceH4/zephyr-7b-gemma-sft-v0.1"),
    ("vigogne-2-7b-chat", "bofenghuang/vigogne-2-7b-chat"),
    ("openchat-3.5-0106", "openchat/openchat-3.5-0106"),
]

S, U, A = "system", "user", "assistant"
CONVERSATIONS = {
    "user": [(U, "Hello!")],
    "system-user": [(S, "You are a terse assistant."), (U, "What is 2+2?")],
    "multi-turn": [(S, "You are a helpful assistant"), (U, "Hello"), (A, "Hi there"), (U, "Who are you")],
    "multi-turn-no-system": [(U, "Hello"), (A, "Hi there"), (U, "Who are you"), (A, "   I am an assistant   "),
                             (U, "Another question")],
    "ends-with-assistant": [(S, "Sys"), (U, "Q1"), (A, "A1")],
    "unicode": [(S, "Réponds en français — s'il te plaît."), (U, "Grüß dich 你好 👋🏽 ε=mc² \"quotes\" {{ not jinja }}"),
                (A, "こんにちは\tworld"), (U, "line one\nline two\r\n")],
    "whitespace": [(U, "  padded  \n"), (A, "\u00a0\u3000nbsp and ideographic space\u2003\u0085"),
                   (U, "\t\x0b\x0c\x1c tail \u200b")],
    "empty-content": [(S, ""), (U, ""), (A, ""), (U, "")],
    "empty-user": [(U, "")],
    "system-only": [(S, "Only a system prompt")],
    "system-mid": [(U, "Hi"), (A, "Yo"), (S, "Be brief."), (U, "Ok")],
    "two-users": [(U, "first"), (U, "second")],
    "assistant-first": [(A, "I speak first"), (U, "fine")],
    "empty": [],
}
# Conversations also rendered without the generation prompt.
NO_GENERATION_PROMPT = ["multi-turn", "ends-with-assistant", "user", "empty"]


def load_ov(path):
    spec = importlib.util.spec_from_file_location("ov_tokenizer_configs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_tokenizer_configs()


def extract(args):
    from gguf import GGUFReader

    configs = load_ov(args.ov_configs)
    os.makedirs(os.path.join(OUT, "templates"), exist_ok=True)
    reader = GGUFReader(os.path.expanduser(args.gguf))
    gguf_template = reader.fields["tokenizer.chat_template"].contents()
    wanted = [(t[0], t[2], t[3]) for t in TEMPLATES] + [(n, "ov", k) for n, k in UNSUPPORTED]
    for name, kind, key in wanted:
        text = gguf_template if kind == "gguf" else configs[key]["chat_template"]
        with open(os.path.join(OUT, "templates", name + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(text)
    # Cross-checks against independent copies (llama-cpp-python ships some of these verbatim).
    try:
        import llama_cpp.llama_chat_format as lcf

        pairs = [("CHATML_CHAT_TEMPLATE", "chatml-openhermes"), ("MIXTRAL_INSTRUCT_CHAT_TEMPLATE", "mistral-legacy"),
                 ("MISTRAL_INSTRUCT_CHAT_TEMPLATE", "mistral-legacy-space"),
                 ("LLAMA3_INSTRUCT_CHAT_TEMPLATE", "meta-llama-3-8b-instruct")]
        for constant, name in pairs:
            same = getattr(lcf, constant) == read_template(name)
            print(f"llama-cpp-python {constant} == {name}: {same}")
    except ImportError:
        pass


def read_template(name):
    with open(os.path.join(OUT, "templates", name + ".jinja"), encoding="utf-8", newline="") as f:
        return f.read()


def render(template, bos, eos, messages, add_generation_prompt, extra):
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(conversations=[messages], chat_template=template,
                                        add_generation_prompt=add_generation_prompt,
                                        bos_token=bos, eos_token=eos, **extra)
    return rendered[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extract", action="store_true")
    parser.add_argument("--ov-configs")
    parser.add_argument("--gguf", default="~/.cache/softpromptkit/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    args = parser.parse_args()
    if args.extract:
        extract(args)

    conversations = {key: [{"role": r, "content": c} for r, c in value] for key, value in CONVERSATIONS.items()}
    templates = []
    for name, family, kind, key, bos, eos, extra in TEMPLATES:
        text = read_template(name)
        results = []
        for conversation, messages in conversations.items():
            for agp in ([True, False] if conversation in NO_GENERATION_PROMPT else [True]):
                entry = {"conversation": conversation, "add_generation_prompt": agp}
                try:
                    entry["output"] = render(text, bos, eos, [dict(m) for m in messages], agp, extra)
                except Exception as error:  # a template's raise_exception, or an undefined messages[0]
                    entry["error"] = f"{type(error).__name__}: {error}"
                results.append(entry)
        templates.append({"name": name, "family": family, "source": key, "bos_token": bos, "eos_token": eos,
                          "variables": extra, "results": results})
    document = {
        "generator": "Tools/scripts/gen_chat_fixtures.py (transformers.utils.chat_template_utils.render_jinja_template)",
        "conversations": conversations,
        "templates": templates,
        "unsupported": [name for name, _ in UNSUPPORTED],
    }
    # One render per line: small, and diffs stay readable.
    def dumps(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    lines = ["{", f'"generator":{dumps(document["generator"])},', f'"conversations":{dumps(conversations)},',
             f'"unsupported":{dumps(document["unsupported"])},', '"templates":[']
    for i, template in enumerate(templates):
        head = {k: v for k, v in template.items() if k != "results"}
        lines.append(dumps(head)[:-1] + ',"results":[')
        lines.append(",\n".join(dumps(r) for r in template["results"]))
        lines.append("]}" + ("," if i + 1 < len(templates) else ""))
    lines.append("]}")
    with open(os.path.join(OUT, "renders.json"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    errors = sum(1 for t in templates for r in t["results"] if "error" in r)
    total = sum(len(t["results"]) for t in templates)
    print(f"{len(templates)} templates, {total} renders ({errors} raise), {len(UNSUPPORTED)} unsupported templates")


if __name__ == "__main__":
    sys.exit(main())
