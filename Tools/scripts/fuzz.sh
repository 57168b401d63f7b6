#!/usr/bin/env bash
# Build the libFuzzer targets (Tools/fuzz) with ASan and run one or all of them for a given time.
#
#   Tools/scripts/fuzz.sh [--time SECONDS] [--nice N] [--no-build] [TARGET… | all]
#
# Targets: gguf safetensors safetensors-index sprompt peft-config tokenizer-json jsonl (default: all, run
# side by side, one process each). Seeds come from real files in the repository (test fixtures, golden
# files, the example task, the first 64 KiB of the default model when it is present); the growing corpus
# lives in .build-fuzz/corpus/TARGET, findings (crash-*, oom-*, timeout-*, leak-*) in
# .build-fuzz/findings/TARGET, logs in .build-fuzz/logs/TARGET.log. At the end each target's executions,
# coverage, corpus size and findings are printed; the exit status is 1 when anything was found.
# A finding becomes a regression test: copy it to Tests/Fixtures/fuzz/TARGET/ and list it in that folder's
# manifest.json (Tests/FuzzRegressionTests replays them).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=1800
niceness=10
build=1
targets=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --time) seconds=$2; shift 2 ;;
        --nice) niceness=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        all) targets=(); shift ;;
        *) targets+=("$1"); shift ;;
    esac
done
all=(gguf safetensors safetensors-index sprompt peft-config tokenizer-json jsonl)
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")

root=.build-fuzz
if [[ $build == 1 ]]; then
    echo "building softprompt-fuzz (release, -sanitize=fuzzer,address)..."
    swift build -c release --product softprompt-fuzz --scratch-path "$root" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld
fi
bin=$root/release/softprompt-fuzz
[[ -x $bin ]] || { echo "no $bin: build first (drop --no-build)"; exit 2; }

# Seeds: real files of each kind.
seeds=$root/seeds
rm -rf "$seeds"; mkdir -p "$seeds"
"$bin" seeds "$seeds" >/dev/null
copy() { local t=$1; shift; mkdir -p "$seeds/$t"; for f in "$@"; do [[ -f $f ]] && cp "$f" "$seeds/$t/$(echo "$f" | tr / _)"; done; return 0; }
copy gguf Tests/Fixtures/tiny/*.gguf Tests/Fixtures/gguf/*.gguf Tests/Fixtures/tokenizers/*.gguf Tests/Fixtures/convert/*.gguf
model=${SOFTPROMPT_MODEL:-$HOME/.cache/softpromptkit/models/SmolLM2-135M-Instruct.Q4_1.gguf}
[[ -f $model ]] && head -c 65536 "$model" > "$seeds/gguf/default-model-head.gguf"
copy safetensors Tests/Fixtures/safetensors/*.safetensors Tests/Fixtures/convert/*.safetensors \
    Tests/Fixtures/peft/adapter/*.safetensors Tests/Fixtures/hf/tiny-qwen2/*.safetensors
copy safetensors-index Tests/Fixtures/hf/tiny-llama/model.safetensors.index.json
copy sprompt Formats/golden/*.sprompt
copy peft-config Tests/Fixtures/peft/adapter/adapter_config.json Tests/Fixtures/convert/ptuning/adapter_config.json
copy tokenizer-json Tests/Fixtures/hf/tiny-llama/tokenizer.json Tests/Fixtures/hf/tiny-qwen2/tokenizer.json
mkdir -p "$seeds/jsonl"
for f in examples/*/*.jsonl; do head -n 40 "$f" > "$seeds/jsonl/$(echo "$f" | tr / _)"; done
printf '{"input": "a", "output": "b", "choices": ["b", "c"]}\n\n{"input":"\\u00e9\\ud83d\\ude00","output":" x"}\n' > "$seeds/jsonl/hand.jsonl"

# Dictionaries: the keys and tokens the parsers look for.
dicts=$root/dicts; mkdir -p "$dicts"
printf '%s\n' '"{"' '"}"' '"["' '"]"' '":"' '","' '"\\u0000"' '"\\ud800"' '"1e999"' '"-0"' '"null"' '"true"' \
    '"9223372036854775807"' '"18446744073709551616"' > "$dicts/json.dict"
{ cat "$dicts/json.dict"; printf '"\\"%s\\""\n' weight_map metadata total_size; } > "$dicts/safetensors-index.dict"
{ cat "$dicts/json.dict"; printf '"\\"%s\\""\n' peft_type PROMPT_TUNING P_TUNING PREFIX_TUNING num_virtual_tokens token_dim \
    num_transformer_submodules num_layers num_attention_heads encoder_hidden_size; } > "$dicts/peft-config.dict"
{ cat "$dicts/json.dict"; printf '"\\"%s\\""\n' input output choices; printf '"\\x0A"\n' ; } > "$dicts/jsonl.dict"
{ cat "$dicts/json.dict"; printf '"\\"%s\\""\n' model type BPE vocab merges added_tokens special content id \
    pre_tokenizer ByteLevel Sequence Split pattern Regex post_processor TemplateProcessing normalizer decoder \
    byte_fallback unk_token ignore_merges; } > "$dicts/tokenizer-json.dict"
{ cat "$dicts/json.dict"; printf '"\\"%s\\""\n' dtype shape data_offsets __metadata__ F32 F16 BF16 I64 U8 BOOL F8_E4M3; } \
    > "$dicts/safetensors.dict"
{ cat "$dicts/json.dict"; printf '"\\"%s\\""\n' compression zstd filter byte_shuffle none payload_sha256 prompts name dtype \
    shape offset length placement prefix template model architecture embedding_length layer_count vocab_size; \
  printf '"\\x89SPROMPT"\n"\\x28\\xb5\\x2f\\xfd"\n'; } > "$dicts/sprompt.dict"
printf '"GGUF"\n"%s"\n' general.alignment general.architecture general.type adapter soft_prompt tokenizer.ggml.model \
    tokenizer.ggml.tokens tokenizer.ggml.scores tokenizer.ggml.token_type tokenizer.ggml.merges llama gpt2 \
    token_embd.weight > "$dicts/gguf.dict"
printf '"\\x03\\x00\\x00\\x00"\n"\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff"\n"\\x00\\x00\\x00\\x80"\n' >> "$dicts/gguf.dict"

maxlen() { case $1 in jsonl|peft-config|safetensors-index) echo 8192 ;; tokenizer-json) echo 32768 ;; *) echo 65536 ;; esac; }

echo "fuzzing ${targets[*]} for ${seconds}s each (nice $niceness), side by side"
pids=()
for t in "${targets[@]}"; do
    mkdir -p "$root/corpus/$t" "$root/findings/$t" "$root/logs"
    # -malloc_limit_mb: one allocation past 256 MiB from an input of at most 64 KiB is a finding.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=allocator_may_return_null=0:detect_leaks=0 nice -n "$niceness" "$bin" "$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len="$(maxlen "$t")" \
        -dict="$dicts/$t.dict" -print_final_stats=1 -artifact_prefix="$root/findings/$t/" \
        "$root/corpus/$t" "$seeds/$t" > "$root/logs/$t.log" 2>&1 &
    pids+=($!)
done
status=0
for i in "${!pids[@]}"; do wait "${pids[$i]}" || true; done

printf '\n%-18s %12s %9s %8s %7s %9s\n' target executions exec/s cov corpus findings
for t in "${targets[@]}"; do
    log=$root/logs/$t.log
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
    corpus=$(ls "$root/corpus/$t" | wc -l)
    found=$(ls "$root/findings/$t" | wc -l)
    [[ $found -gt 0 ]] && status=1
    printf '%-18s %12s %9s %8s %7s %9s\n' "$t" "$runs" "$speed" "$cov" "$corpus" "$found"
done
[[ $status == 0 ]] || echo "findings in $root/findings/*; logs in $root/logs/"
exit $status
