#!/usr/bin/env bash
# Crash safety under kill -9: every command that writes a file is SIGKILLed at random moments, and each
# target must then be its previous version intact or the new one complete, never torn; a killed and
# resumed `train` must end with the prompt of an uninterrupted run, bit for bit.
#
#   Tools/scripts/kill_check.sh [--short] [KILLS_PER_COMMAND=3]
#
#   --short   CI mode: 1 kill per command, 4 training steps, no attach / HF -> GGUF (well under 2 minutes).
#
# Builds nothing: uses $SOFTPROMPT_BIN, else the release binary (`swift build -c release` first); the
# model is $SOFTPROMPT_MODEL or the default one (Tools/scripts/bootstrap.sh); data examples/name-language.
#
# Half of the kills fall at a random delay over the command's run time; the other half watch for the
# target's temporary (TARGET.tmp-*) and kill while it is being written, so that writes are hit even when
# they last milliseconds. After each kill the target is classified:
#   before   unchanged (previous version or absent), no temporary left
#   during   unchanged, the killed writer's temporary left (collected by the next write)
#   after    the new version, complete
#   mixed    PEFT directory only: new weights beside the previous config (each file whole)
#   TORN     anything else: the check fails
# For train, the checkpoint and --log-json are parsed after every kill (the step never goes back), the
# output must be absent or final, temporaries must not pile up, and the resumed runs must end with
# exactly the prompt of an uninterrupted run. Every command is finally run once more to completion: its
# target must then equal the uninterrupted output and no temporary may remain.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

short=0
kills=3
for arg in "$@"; do
    case "$arg" in
        --short) short=1 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) [[ "$arg" =~ ^[0-9]+$ && "$arg" -ge 1 ]] || { echo "usage: $0 [--short] [KILLS_PER_COMMAND]" >&2; exit 2; }
           kills=$arg ;;
    esac
done
(( short )) && [[ $# -lt 2 ]] && kills=1

bin=${SOFTPROMPT_BIN:-$(swift build -c release --show-bin-path)/softprompt}
[[ -x "$bin" ]] || { echo "no binary at $bin: build with 'swift build -c release' or set SOFTPROMPT_BIN" >&2; exit 2; }
model=${SOFTPROMPT_MODEL:-$(SOFTPROMPT_SKIP_APT=1 Tools/scripts/bootstrap.sh)}
data=$root/examples/name-language/train.jsonl
evaldata=$root/examples/name-language/eval.jsonl
template=$'Name: {input}\nLanguage:'
work=$(mktemp -d "${TMPDIR:-/tmp}/kill_check.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

# --- parsers for the train artifacts ---------------------------------------------------------------
cat > "$work/parse.py" <<'EOF'
import ast, json, struct, sys

def safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    assert len(b) == 8 + n + end, f"{len(b)} bytes, header says {8 + n + end}"
    return header

def npy(path):
    b = open(path, "rb").read()
    assert b[:6] == b"\x93NUMPY", "magic"
    if b[6] == 1:
        n, start = struct.unpack("<H", b[8:10])[0], 10
    else:
        n, start = struct.unpack("<I", b[8:12])[0], 12
    header = ast.literal_eval(b[start:start + n].decode("latin1"))
    count = 1
    for d in header["shape"]:
        count *= d
    assert len(b) == start + n + 4 * count, f"{len(b)} bytes for shape {header['shape']}"

kind, path = sys.argv[1], sys.argv[2]
try:
    if kind == "ckpt":
        h = safetensors(path)
        print(json.loads(h["__metadata__"]["softpromptkit.training_state"])["step"])
    elif kind == "npy":
        npy(path)
    elif kind == "json":
        json.load(open(path))
    else:
        raise SystemExit(f"unknown kind {kind}")
except SystemExit:
    raise
except Exception as e:
    print(f"{path}: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
EOF
parse() { python3 "$work/parse.py" "$@"; }
rand() { python3 -c "import random,sys; print(round(random.uniform($1, $2), 3))"; }
now() { date +%s.%N; }

# Same content: files byte for byte, directories by their listing and each file.
same() {
    if [[ -d "$1" && -d "$2" ]]; then
        [[ "$(ls -A "$1")" == "$(ls -A "$2")" ]] || return 1
        local f
        for f in $(ls -A "$1"); do cmp -s "$1/$f" "$2/$f" || return 1; done
        return 0
    fi
    [[ -f "$1" && -f "$2" ]] && cmp -s "$1" "$2"
}
absent_or_empty() { [[ ! -e "$1" ]] || { [[ -d "$1" ]] && [[ -z "$(ls -A "$1")" ]]; }; }
temporaries() { compgen -G "${1%/}.tmp-*" || true; }
# Temporaries of TARGET that appeared since the list $2 was taken (the killed run's own).
new_temporaries() { comm -13 <(echo "$2") <(temporaries "$1"); }

# Runs "$@" in the background and SIGKILLs it: mode "random" after $2 seconds, mode "write" as soon as
# a temporary of target $3 appears (after an optional delay $2). Sets `killed` (1, or 0 when the command
# ended first) and `status`.
run_killed() {
    local mode=$1 delay=$2 target=$3; shift 3
    killed=0; status=0
    if [[ $mode == random ]]; then
        { timeout -s KILL "$delay" "$@" >/dev/null 2>&1; } 2>/dev/null || status=$?
        [[ $status == 137 ]] && killed=1
        return 0
    fi
    # Temporaries already there (orphans of earlier kills) do not count: only a new one triggers.
    local -A old=()
    local name names
    shopt -s nullglob
    for name in "${target%/}".tmp-*; do old[$name]=1; done
    "$@" >/dev/null 2>&1 &
    local pid=$!
    [[ $delay != 0 ]] && sleep "$delay"
    while kill -0 "$pid" 2>/dev/null; do
        names=("${target%/}".tmp-*)
        for name in "${names[@]}"; do
            [[ -v old[$name] ]] && continue
            kill -KILL "$pid" 2>/dev/null && killed=1
            break 2
        done
    done
    shopt -u nullglob
    { wait "$pid"; } 2>/dev/null || status=$?
    (( status == 137 )) && killed=1
    return 0
}

declare -A K_KILLS K_BEFORE K_DURING K_AFTER K_MIXED K_DONE K_FAIL
order=()
failures=0
record() {  # command outcome
    local c=$1 o=$2
    [[ -v K_KILLS[$c] ]] || { order+=("$c"); K_KILLS[$c]=0; K_BEFORE[$c]=0; K_DURING[$c]=0; K_AFTER[$c]=0; K_MIXED[$c]=0; K_DONE[$c]=0; K_FAIL[$c]=0; }
    case "$o" in
        kill) K_KILLS[$c]=$(( K_KILLS[$c] + 1 )) ;;
        before) K_BEFORE[$c]=$(( K_BEFORE[$c] + 1 )) ;;
        during) K_DURING[$c]=$(( K_DURING[$c] + 1 )) ;;
        after) K_AFTER[$c]=$(( K_AFTER[$c] + 1 )) ;;
        mixed) K_MIXED[$c]=$(( K_MIXED[$c] + 1 )) ;;
        done) K_DONE[$c]=$(( K_DONE[$c] + 1 )) ;;
        fail) K_FAIL[$c]=$(( K_FAIL[$c] + 1 )); failures=$(( failures + 1 )) ;;
    esac
}
fail() { echo "  FAIL [$1]: $2"; record "$1" fail; }

# --- one writing command ---------------------------------------------------------------------------
# check_command NAME TARGET PREVIOUS -- ARGS…   (ARGS use @OUT@ for the output path)
# PREVIOUS is a file or directory copied to TARGET before each run, or "-" for an absent target.
check_command() {
    local name=$1 target=$2 previous=$3; shift 4
    local dir; dir=$(dirname "$target")
    local reference; reference="$work/ref/$(basename "$target")"
    mkdir -p "$work/ref" "$dir"
    local args=() a
    for a in "$@"; do args+=("${a//@OUT@/$reference}"); done
    local t0; t0=$(now)
    "$bin" "${args[@]}" >/dev/null 2>"$work/err" || { cat "$work/err"; fail "$name" "uninterrupted run failed"; return; }
    local duration; duration=$(echo "$(now) - $t0" | bc)
    # The uninterrupted output must be reproducible, or "new version" could not be recognised.
    mv "$reference" "$reference.first"
    "$bin" "${args[@]}" >/dev/null 2>&1
    same "$reference" "$reference.first" || { fail "$name" "two uninterrupted runs differ"; return; }
    rm -rf "$reference.first"
    args=()
    for a in "$@"; do args+=("${a//@OUT@/$target}"); done
    echo "$name: uninterrupted ${duration}s"

    local i=0 attempts=0 mode delay landed
    while (( i < kills && attempts < 4 * kills )); do
        attempts=$(( attempts + 1 ))
        rm -rf "$target"
        [[ $previous != - ]] && cp -r "$previous" "$target"
        if (( attempts % 2 )); then mode=random; delay=$(rand 0.005 "$duration")
        else mode=write; delay=0; fi
        local old; old=$(temporaries "$target")
        run_killed "$mode" "$delay" "$target" "$bin" "${args[@]}"
        (( killed )) && i=$(( i + 1 ))
        local left; left=$(new_temporaries "$target" "$old")
        if (( ! killed )); then
            landed=$(same "$target" "$reference" && echo done || echo TORN)
        elif [[ $previous == - ]] && absent_or_empty "$target"; then
            landed=$([[ -n $left ]] && echo during || echo before)
        elif [[ $previous != - ]] && same "$target" "$previous"; then
            landed=$([[ -n $left ]] && echo during || echo before)
        elif same "$target" "$reference"; then
            landed=after
        elif [[ -d "$target" && $previous != - && -d "$previous" ]] && mixed_ok "$target" "$previous" "$reference"; then
            landed=mixed
        else
            landed=TORN
        fi
        (( killed )) && record "$name" kill
        echo "  run $attempts ($mode ${delay}s): $landed${left:+ (temporary left: $(basename "$(echo "$left" | head -1)"))}"
        if [[ $landed == TORN ]]; then fail "$name" "torn target after kill $i"; else record "$name" "$landed"; fi
    done
    # A last uninterrupted run over whatever the kills left: new version, no temporaries.
    rm -rf "$target"
    [[ $previous != - ]] && cp -r "$previous" "$target"
    "$bin" "${args[@]}" >/dev/null 2>&1 || { fail "$name" "final run failed"; return; }
    same "$target" "$reference" || fail "$name" "final run's output differs from the uninterrupted one"
    [[ -z "$(temporaries "$target")" ]] || fail "$name" "temporaries left after a completed run: $(temporaries "$target")"
}

# A directory whose every file is the previous or the new version (PEFT: two renames in a row).
mixed_ok() {
    local target=$1 previous=$2 reference=$3 f
    for f in $(ls -A "$target"); do
        cmp -s "$target/$f" "$previous/$f" || cmp -s "$target/$f" "$reference/$f" || return 1
    done
    [[ "$(ls -A "$target")" == "$(ls -A "$reference")" ]]
}

# --- train: kills, resumes, bit-identical end --------------------------------------------------------
steps=$(( short ? 4 : 12 ))
train_args=(train -m "$model" --data "$data" --eval "$evaldata" --eval-limit 16 --template "$template" --steps "$steps"
            --eval-every 2 --checkpoint-every 1 --batch 4 --seed 7 -t 2)

check_train_resume() {
    local name="train --resume"
    local d="$work/train"
    mkdir -p "$d"
    local t0; t0=$(now)
    "$bin" "${train_args[@]}" --out "$d/straight.npy" --checkpoint "$d/straight.ckpt" --log-json "$d/straight.log.json" \
        >/dev/null 2>"$work/err" || { cat "$work/err"; fail "$name" "uninterrupted run failed"; return; }
    local duration; duration=$(echo "$(now) - $t0" | bc)
    echo "$name: uninterrupted $steps steps ${duration}s"
    local out="$d/killed.npy" ckpt="$d/killed.ckpt" log="$d/killed.log.json"
    local wanted=$(( kills * 2 )) done_kills=0 last_step=-1 runs=0 completions=0
    while (( done_kills < wanted && runs < 4 * wanted )); do
        local resume=()
        [[ -f "$ckpt" ]] && resume=(--resume)
        local mode delay
        if (( runs % 2 )); then mode=write; delay=$(rand 0.5 "$(echo "$duration * 0.6" | bc)")
        else mode=random; delay=$(rand 0.5 "$(echo "$duration * 0.9" | bc)"); fi
        runs=$(( runs + 1 ))
        local old; old=$(ls "$d" | grep '\.tmp-' || true)
        run_killed "$mode" "$delay" "$ckpt" "$bin" "${train_args[@]}" "${resume[@]}" --out "$out" --checkpoint "$ckpt" --log-json "$log"
        if (( ! killed )); then
            (( status == 0 )) || { fail "$name" "a resumed run failed (status $status)"; return; }
            completions=$(( completions + 1 ))
            if cmp -s "$out" "$d/straight.npy"; then record "$name" done
            else fail "$name" "a run completed after kills differs from the uninterrupted one"; fi
            echo "  run $runs completed: prompt $(cmp -s "$out" "$d/straight.npy" && echo identical || echo DIFFERENT); starting over"
            rm -f "$out" "$ckpt" "$log"
            last_step=-1
            continue
        fi
        done_kills=$(( done_kills + 1 ))
        record "$name" kill
        local landed=compute step=none problems=()
        [[ -n "$(comm -13 <(echo "$old") <(ls "$d" | grep '\.tmp-' || true))" ]] && landed=during
        if [[ -f "$ckpt" ]]; then
            if step=$(parse ckpt "$ckpt"); then
                (( step >= last_step )) || problems+=("checkpoint went back from step $last_step to $step")
                last_step=$step
            else problems+=("torn checkpoint"); fi
        fi
        [[ -f "$log" ]] && { parse json "$log" || problems+=("torn --log-json"); }
        if [[ -f "$out" ]]; then
            if parse npy "$out" && cmp -s "$out" "$d/straight.npy"; then landed=after
            else problems+=("--out is neither absent nor the final prompt"); fi
        fi
        local left; left=$(ls "$d" | grep -c '^killed.*\.tmp-' || true)
        (( left <= 3 )) || problems+=("$left temporaries piled up")
        echo "  kill $done_kills ($mode ${delay}s): checkpoint step $step, $landed, temporaries $left"
        if (( ${#problems[@]} )); then fail "$name" "${problems[*]}"
        elif [[ $landed == during ]]; then record "$name" during
        elif [[ $landed == after ]]; then record "$name" after
        else record "$name" before; fi
    done
    local resume=()
    [[ -f "$ckpt" ]] && resume=(--resume)
    "$bin" "${train_args[@]}" "${resume[@]}" --out "$out" --checkpoint "$ckpt" --log-json "$log" >/dev/null 2>"$work/err" \
        || { cat "$work/err"; fail "$name" "final resume failed"; return; }
    if cmp -s "$out" "$d/straight.npy"; then echo "  final --resume: prompt bit-identical to the uninterrupted run"
    else fail "$name" "final prompt differs from the uninterrupted run"; fi
    local left; left=$(ls "$d" | grep -c '\.tmp-' || true)
    (( left == 0 )) || fail "$name" "$left temporaries left after the final run"
}

# train --out over an existing .sprompt: previous bytes, or a complete file holding the reference prompt.
check_train_overwrite() {
    local name="train --out (overwrite)"
    local d="$work/overwrite"
    mkdir -p "$d"
    local args=(train -m "$model" --data "$data" --eval "$evaldata" --eval-limit 16 --template "$template" --steps 4
          --eval-every 2 --checkpoint-every 0 --batch 4 --seed 11 -t 2)
    local t0; t0=$(now)
    "$bin" "${args[@]}" --out "$d/ref.sprompt" >/dev/null 2>&1 || { fail "$name" "uninterrupted run failed"; return; }
    local duration; duration=$(echo "$(now) - $t0" | bc)
    "$bin" convert --prompt "$d/ref.sprompt" --out "$d/ref.npy" >/dev/null
    cp "$work/prompt-b.sprompt" "$d/previous.sprompt"
    echo "$name: uninterrupted ${duration}s"
    local i=0 attempts=0 mode delay landed target="$d/out.sprompt"
    while (( i < kills && attempts < 4 * kills )); do
        attempts=$(( attempts + 1 ))
        cp "$d/previous.sprompt" "$target"
        if (( attempts % 2 )); then mode=random; delay=$(rand 0.005 "$duration")
        else mode=write; delay=0; fi
        local old; old=$(temporaries "$target")
        run_killed "$mode" "$delay" "$target" "$bin" "${args[@]}" --out "$target"
        (( killed )) && i=$(( i + 1 ))
        local left; left=$(new_temporaries "$target" "$old")
        rm -f "$d/check.npy"
        if (( killed )) && cmp -s "$target" "$d/previous.sprompt"; then landed=$([[ -n $left ]] && echo during || echo before)
        elif "$bin" inspect "$target" >/dev/null 2>&1 && "$bin" convert --prompt "$target" --out "$d/check.npy" >/dev/null 2>&1 \
             && cmp -s "$d/check.npy" "$d/ref.npy"; then landed=$( (( killed )) && echo after || echo done)
        else landed=TORN; fi
        (( killed )) && record "$name" kill
        echo "  run $attempts ($mode ${delay}s): $landed${left:+ (temporary left: $(basename "$(echo "$left" | head -1)"))}"
        if [[ $landed == TORN ]]; then fail "$name" "torn .sprompt after kill $i"; else record "$name" "$landed"; fi
    done
    "$bin" "${args[@]}" --out "$target" >/dev/null 2>&1 || { fail "$name" "final run failed"; return; }
    [[ -z "$(temporaries "$target")" ]] || fail "$name" "temporaries left after a completed run"
}

# --- inputs ------------------------------------------------------------------------------------------
echo "binary $bin; model $model; $kills kill(s) per command$( (( short )) && echo ', short mode')"
p="$work/prompts"
mkdir -p "$p"
# Two different prompts (the "new" and the "previous" content of each target), from short --dry-run-free runs.
"$bin" train -m "$model" --data "$data" --template "$template" --steps 1 --batch 2 --seed 1 --eval-every 0 \
    --checkpoint-every 0 --out "$p/a.npy" >/dev/null 2>&1
"$bin" train -m "$model" --data "$data" --template "$template" --steps 1 --batch 2 --seed 2 --eval-every 0 \
    --checkpoint-every 0 --out "$p/b.npy" >/dev/null 2>&1
"$bin" convert --prompt "$p/a.npy" --out "$p/a.sprompt" -m "$model" --template "$template" >/dev/null
"$bin" convert --prompt "$p/b.npy" --out "$p/b.sprompt" -m "$model" --template "$template" >/dev/null
cp "$p/b.sprompt" "$work/prompt-b.sprompt"
for ext in gguf npy npz safetensors; do "$bin" convert --prompt "$p/b.sprompt" --out "$p/b.$ext" >/dev/null; done
"$bin" convert --prompt "$p/b.sprompt" --out "$p/b-peft" >/dev/null
"$bin" eval -m "$model" --data "$evaldata" --limit 4 --predictions "$p/previous.jsonl" >/dev/null 2>&1

check_train_resume
o="$work/out"
for ext in sprompt gguf npy npz safetensors; do
    check_command "convert -> .$ext" "$o/a.$ext" "$p/b.$ext" -- convert --prompt "$p/a.sprompt" --out @OUT@ --to "$ext"
done
check_command "convert -> PEFT (existing)" "$o/peft-existing" "$p/b-peft" -- convert --prompt "$p/a.sprompt" --out @OUT@ --to peft
check_command "convert -> PEFT (new)" "$o/peft-new" - -- convert --prompt "$p/a.sprompt" --out @OUT@ --to peft
check_command "eval --predictions" "$o/predictions.jsonl" "$p/previous.jsonl" -- \
    eval -m "$model" --data "$evaldata" --prompt "$p/a.sprompt" --limit 8 --predictions @OUT@
check_command "convert-model -> HF dir" "$o/hf" - -- convert-model -m "$model" --out @OUT@ --dtype f16
check_train_overwrite
if (( ! short )); then
    check_command "attach -> GGUF" "$o/baked.gguf" - -- attach -m "$model" --prompt "$p/a.sprompt" --out @OUT@ --name t
    check_command "attach -> HF dir" "$o/baked-hf" - -- attach -m "$model" --prompt "$p/a.sprompt" --out @OUT@ --to hf --name t
    check_command "convert-model HF -> GGUF (overwrite)" "$o/back.gguf" "$p/b.gguf" -- \
        convert-model -m "$work/ref/hf" --out @OUT@ --dtype q8_0
fi

# --- summary -----------------------------------------------------------------------------------------
echo
printf '%-36s %5s %7s %7s %6s %6s %9s %5s\n' command kills before during after mixed completed FAIL
total=0
for c in "${order[@]}"; do
    printf '%-36s %5d %7d %7d %6d %6d %9d %5d\n' "$c" "${K_KILLS[$c]}" "${K_BEFORE[$c]}" "${K_DURING[$c]}" \
        "${K_AFTER[$c]}" "${K_MIXED[$c]}" "${K_DONE[$c]}" "${K_FAIL[$c]}"
    total=$(( total + K_KILLS[$c] ))
done
echo "total kills: $total; failures: $failures; $(( $(date +%s) - started ))s"
(( failures == 0 )) || { echo "FAIL"; exit 1; }
echo "PASS: no torn file, resumed training bit-identical"
