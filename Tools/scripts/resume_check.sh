#!/usr/bin/env bash
# Kill `softprompt train` with SIGKILL at random moments, resume it each time, and check that the final
# prompt is bit-identical to an uninterrupted run with the same settings and thread count.
#
#   Tools/scripts/resume_check.sh [KILLS=3] [STEPS=12]
#
# Uses examples/name-language (falls back to $DATA / $EVAL when set) and the default model.
set -euo pipefail
cd "$(dirname "$0")/../.."
kills=${1:-3}
steps=${2:-12}
bin=${SOFTPROMPT_BIN:-$(swift build -c release --show-bin-path)/softprompt}
data=${DATA:-examples/name-language/train.jsonl}
eval=${EVAL:-examples/name-language/eval.jsonl}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--data "$data" --eval "$eval" --eval-limit 16 --template $'Name: {input}\nLanguage:' --steps "$steps"
        --eval-every 4 --checkpoint-every 2 --batch 4 --seed 7 -t 2)

echo "uninterrupted run ($steps steps)..."
"$bin" train "${common[@]}" --out "$work/straight.npy" --checkpoint "$work/straight.ckpt" 2>/dev/null >/dev/null

echo "killed run: $kills random SIGKILLs, each followed by --resume"
rm -f "$work/killed.ckpt"
start=$(date +%s.%N)
"$bin" train "${common[@]}" --out "$work/killed.npy" --checkpoint "$work/killed.ckpt" 2>/dev/null >/dev/null
full=$(echo "$(date +%s.%N) - $start" | bc)
rm -f "$work/killed.npy" "$work/killed.ckpt"
for i in $(seq 1 "$kills"); do
    delay=$(python3 -c "import random; print(round(random.uniform(0.5, $full * 0.9), 2))")
    resume=()
    [[ -f "$work/killed.ckpt" ]] && resume=(--resume)
    { timeout -s KILL "$delay" "$bin" train "${common[@]}" "${resume[@]}" --out "$work/killed.npy" \
        --checkpoint "$work/killed.ckpt" >/dev/null 2>&1; } 2>/dev/null || true
    step=$(python3 -c "
import json,struct,sys
try:
    b=open('$work/killed.ckpt','rb').read(); n=struct.unpack('<Q',b[:8])[0]
    print(json.loads(json.loads(b[8:8+n])['__metadata__']['softpromptkit.training_state'])['step'])
except FileNotFoundError: print('none')")
    echo "  kill $i after ${delay}s: checkpoint at step $step"
done
resume=()
[[ -f "$work/killed.ckpt" ]] && resume=(--resume)
"$bin" train "${common[@]}" "${resume[@]}" --out "$work/killed.npy" --checkpoint "$work/killed.ckpt" >/dev/null 2>&1
if cmp -s "$work/straight.npy" "$work/killed.npy"; then
    echo "PASS: the resumed prompt is bit-identical to the uninterrupted one"
else
    echo "FAIL: prompts differ"; exit 1
fi
