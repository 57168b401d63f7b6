#!/usr/bin/env bash
# End-to-end check of `softprompt bank` and `train --bank`: builds a bank from prompts in several formats
# and dtypes, then after every change checks with `bank list --json` that each prompt the change did not
# name kept its vector checksum (SHA-256 of its stored bytes), and that refused changes leave the file
# byte-identical.
#
#   Tools/scripts/bank_check.sh [STEPS=4]
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-4}
bin=${SOFTPROMPT_BIN:-$(swift build -c release --show-bin-path)/softprompt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bank="$work/bank.sprompt"
template=$'Name: {input}\nLanguage:'

checksums() { "$bin" bank list "$bank" --json | python3 -c '
import json, sys
for p in json.load(sys.stdin)["prompts"]: print(p["name"], p["dtype"], p["vectors_sha256"])'; }

# Same vectors, unchanged other prompts: every line of $1 whose name is not $2 appears in $3.
kept() {
    local before=$1 changed=$2 after=$3
    while read -r name dtype sum; do
        [ "$name" = "$changed" ] && continue
        grep -qx "$name $dtype $sum" <<<"$after" || { echo "FAIL: '$name' changed"; exit 1; }
    done <<<"$before"
}

echo "train two prompts ($steps steps each) straight into the bank..."
"$bin" train --data examples/name-language/train.jsonl --template "$template" --steps "$steps" -t 2 \
    --bank "$bank" --name f32task --seed 1 >/dev/null 2>&1
"$bin" train --data examples/name-language/train.jsonl --template "$template" --steps "$steps" -t 2 \
    --bank "$bank" --name bf16task --dtype bf16 --seed 2 >/dev/null 2>&1
s1=$(checksums)

echo "add: an f16 .sprompt, a .npy, a GGUF adapter"
"$bin" convert --prompt "$bank:f32task" --out "$work/half.sprompt" --dtype f16 --name half >/dev/null
"$bin" bank add "$bank" --prompt "$work/half.sprompt" >/dev/null
s2=$(checksums); kept "$s1" half "$s2"
"$bin" bank extract "$bank" bf16task --out "$work/one.npy" --dtype f32 >/dev/null
"$bin" bank add "$bank" --prompt "$work/one.npy" --name fromnpy 2>/dev/null >/dev/null
s3=$(checksums); kept "$s2" fromnpy "$s3"
"$bin" bank extract "$bank" half --out "$work/adapter.gguf" >/dev/null
"$bin" bank add "$bank" --prompt "$work/adapter.gguf" --name fromgguf >/dev/null
s4=$(checksums); kept "$s3" fromgguf "$s4"
# Extracted and re-added unchanged, a prompt keeps its checksum.
[ "$(grep '^half ' <<<"$s4" | cut -d' ' -f3)" = "$(grep '^fromgguf ' <<<"$s4" | cut -d' ' -f3)" ] || { echo "FAIL: gguf round trip"; exit 1; }

echo "refusals leave the file byte-identical"
before=$(sha256sum "$bank")
if "$bin" bank add "$bank" --prompt "$work/half.sprompt" 2>/dev/null; then echo "FAIL: duplicate accepted"; exit 1; fi
if "$bin" train --data examples/name-language/train.jsonl --steps 1 --bank "$bank" --name half >/dev/null 2>&1; then
    echo "FAIL: train --bank onto an existing name accepted"; exit 1
fi
if "$bin" train -m Tests/Fixtures/tiny/llama-spm.gguf --data examples/name-language/train.jsonl --steps 1 \
    --bank "$bank" --name tiny >/dev/null 2>&1; then echo "FAIL: another model's prompt accepted"; exit 1; fi
[ "$before" = "$(sha256sum "$bank")" ] || { echo "FAIL: a refused change altered the bank"; exit 1; }
[ ! -e "$bank.lock" ] || { echo "FAIL: lock left behind"; exit 1; }

echo "replace, remove, rename"
"$bin" bank add "$bank" --prompt "$work/one.npy" --name half --replace >/dev/null 2>&1
s5=$(checksums); kept "$s4" half "$s5"
"$bin" bank remove "$bank" fromnpy >/dev/null
s6=$(checksums); kept "$s5" fromnpy "$s6"
grep -q '^fromnpy ' <<<"$s6" && { echo "FAIL: not removed"; exit 1; }
"$bin" bank rename "$bank" fromgguf gguf >/dev/null
s7=$(checksums)
[ "$(sed 's/^fromgguf /gguf /' <<<"$s6")" = "$s7" ] || { echo "FAIL: rename changed vectors"; exit 1; }

echo "$s7"
echo "OK: every change kept the other prompts' vector checksums"
