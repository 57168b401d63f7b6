#!/usr/bin/env bash
# The main job, end to end: bootstrap (apt packages, the default model), release build, then learn a soft
# prompt for the example task on the default model, evaluate it against no prompt and a hand-written
# prompt on held-out data, and generate with it.
#
# Environment: THREADS (default 2), STEPS (default 200).
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${THREADS:-2}
steps=${STEPS:-200}
task=examples/name-language
start=$(date +%s)
stage() { echo; echo "== [$(( $(date +%s) - start ))s] $*"; }

stage "bootstrap"
model=$(Tools/scripts/bootstrap.sh)
stage "swift build -c release"
swift build -c release --product softprompt
bin=$(swift build -c release --show-bin-path)/softprompt
# The prompt goes beside the model (MODEL_BASENAME.TASK.sprompt) so `--task name-language` finds it.
prompt="${model%.gguf}.name-language.sprompt"
template=$'Name: {input}\nLanguage:'

stage "softprompt inspect (the model)"
"$bin" inspect "$model" | sed -n 1,12p

stage "softprompt train: $task, 20 virtual tokens initialised from the hand-written prompt, $steps steps"
"$bin" train -m "$model" --data "$task/train.jsonl" --eval "$task/eval.jsonl" --template "$template" \
    --tokens 20 --init text --init-text "$(cat "$task/hard_prompt.txt")"$'\n' \
    --steps "$steps" --batch 8 --lr 0.3 --warmup 10 --schedule cosine --eval-every 50 --seed 0 -t "$threads" \
    --out "$prompt" --log-json "${prompt%.sprompt}.log.json"

stage "softprompt inspect (the learned prompt)"
"$bin" inspect "$prompt" | sed -n 1,14p

stage "softprompt eval --compare on the held-out test split (200 rows, chance 25%)"
"$bin" eval -m "$model" --data "$task/test.jsonl" --prompt "$prompt" --hard-prompt-file "$task/hard_prompt.txt" \
    --compare -t "$threads"

stage "softprompt generate --task name-language (greedy; test rows: the same currency in four languages)"
for row in "Dinaro giordano|Italian" "Dinar irakien|French" "Jordanischer Dinar|German" "Dinar iraquí|Spanish"; do
    name=${row%|*}
    printf '%-20s (answer: %-7s) →' "$name" "${row#*|}"
    "$bin" generate -m "$model" --task name-language -n 1 -t "$threads" "$name" 2>/dev/null
done
stage "done"
