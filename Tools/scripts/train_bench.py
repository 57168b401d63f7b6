#!/usr/bin/env python3
"""Training benchmark: PEFT prompt tuning vs `softprompt train`, same data, batch, threads, steps.

Each side runs as its own child process; its peak RSS comes from os.wait4 (that child only) and
its tokens/s counts EVERY processed position, virtual tokens included:
  * PEFT: from peft_train.py's JSON (training steps only, model load excluded);
  * ours: the `tokens_per_second` field of its JSON log when present (the last one, if the log is
    JSON Lines), else positions / wall time, positions = steps * batch * mean(virtual + row tokens)
    (wall time then includes model load: a lower bound).
Ours is a command template; placeholders: {model} {data} {template} {steps} {batch} {threads}
{virtual} {log} {seed}. If its executable is missing it is skipped with a message.

  python3 Tools/scripts/train_bench.py --task examples/name-language --steps 30 \
      --ours ".build-x/release/softprompt train -m {model} --data {data} --template {template} \
              --steps {steps} --batch {batch} -t {threads} --log-json {log}" --json /tmp/bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sp_common as C  # noqa: E402


def run_child(argv: list[str], log_path: str | None = None) -> dict:
    """Runs argv, returns wall seconds, exit code and the child's own peak RSS (MiB).

    Linux carries a process's peak RSS across fork + exec (exec records the old address space's high-water
    mark), so a child forked from this Python process (which may hold a tokenizer) would report at least
    our own RSS. The child therefore runs under GNU time (`/usr/bin/time -f %M`), which is small; without
    it we fall back to wait4 and say the figure is an upper bound.
    """
    t0 = time.perf_counter()
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    gnu_time = shutil.which("time") if os.path.exists("/usr/bin/time") else None
    rss_file = tempfile.NamedTemporaryFile(prefix="rss.", delete=False).name
    wrapped = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv if gnu_time else argv
    try:
        proc = subprocess.Popen(wrapped, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log_path:
            out.close()
    rss_mib, source = usage.ru_maxrss / 1024.0, "wait4 (upper bound: includes this parent's RSS at fork)"
    if gnu_time:
        try:
            rss_mib, source = int(open(rss_file).read().split()[-1]) / 1024.0, "/usr/bin/time %M"
        except (OSError, ValueError, IndexError):
            pass
    os.unlink(rss_file)
    return {"wall_seconds": time.perf_counter() - t0, "exit_code": proc.returncode,
            "peak_rss_mib": rss_mib, "rss_source": source}


def find_tokens_per_second(path: str):
    """`tokens_per_second` from a JSON object or the last JSON Lines record that has it."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return None
    records = []
    try:
        records = [json.loads(text)]
    except json.JSONDecodeError:
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    found = None

    def walk(x):
        nonlocal found
        if isinstance(x, dict):
            if isinstance(x.get("tokens_per_second"), (int, float)):
                found = float(x["tokens_per_second"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    for r in records:
        walk(r)
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", "-m", default=C.DEFAULT_MODEL)
    ap.add_argument("--task", help="task dir (train.jsonl + task.json)")
    ap.add_argument("--data", help="training JSONL (default: TASK/train.jsonl)")
    ap.add_argument("--template", help="default: TASK/task.json template")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", "-t", type=int, default=2)
    ap.add_argument("--virtual-tokens", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ours", help="command template for our trainer (see above)")
    ap.add_argument("--skip-peft", action="store_true")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--keep", help="keep child logs in this directory")
    args = ap.parse_args()

    task = C.load_task(args.task) if args.task else {}
    template = args.template or task.get("template")
    data = args.data or (os.path.join(args.task, "train.jsonl") if args.task else None)
    if not template or not data:
        sys.exit("train_bench: give --task, or --data and --template")
    rows = C.read_jsonl(data)
    workdir = args.keep or tempfile.mkdtemp(prefix="train_bench.")
    os.makedirs(workdir, exist_ok=True)

    # Positions per row (template+input+output tokens), to report the workload and for ours' fallback.
    from transformers import AutoTokenizer
    directory, name = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    lengths = [len(C.encode(tok, C.render(template, r["input"]))) + len(C.encode(tok, r["output"])) for r in rows]
    mean_row = sum(lengths) / len(lengths)
    mean_positions = args.virtual_tokens + mean_row
    results = {"model": args.model, "data": data, "template": template, "steps": args.steps,
               "batch": args.batch, "threads": args.threads, "virtual_tokens": args.virtual_tokens,
               "mean_row_tokens": mean_row, "mean_positions_per_row": mean_positions, "runs": {}}
    print(f"workload: {len(rows)} rows, mean {mean_row:.2f} tokens + {args.virtual_tokens} virtual = "
          f"{mean_positions:.2f} positions/row; batch {args.batch}, {args.steps} steps, {args.threads} threads")

    if not args.skip_peft:
        peft_json = os.path.join(workdir, "peft.json")
        argv = [sys.executable, os.path.join(HERE, "peft_train.py"), "--model", args.model, "--train", data,
                "--template", template, "--steps", str(args.steps), "--batch", str(args.batch),
                "--threads", str(args.threads), "--virtual-tokens", str(args.virtual_tokens),
                "--init", "SAMPLE_VOCAB", "--lr", str(args.lr), "--seed", str(args.seed),
                "--quiet", "--json", peft_json]
        print("peft:", shlex.join(argv), flush=True)
        r = run_child(argv, os.path.join(workdir, "peft.log"))
        if r["exit_code"] == 0:
            pj = json.load(open(peft_json))
            r.update(tokens_per_second=pj["tokens_per_second"], seconds_per_step=pj["seconds_per_step"],
                     train_seconds=pj["train_seconds"], load_seconds=pj["load_seconds"],
                     final_loss=pj["steps_log"][-1]["loss"], tokens_per_second_source="peft json")
        else:
            print(f"peft failed (exit {r['exit_code']}), see {workdir}/peft.log")
        results["runs"]["peft"] = r

    if args.ours:
        log = os.path.join(workdir, "ours.json")
        fields = dict(model=args.model, data=data, template=template, steps=args.steps, batch=args.batch,
                      threads=args.threads, virtual=args.virtual_tokens, log=log, seed=args.seed)
        argv = [part.format(**fields) for part in shlex.split(args.ours)]
        exe = argv[0]
        if shutil.which(exe) is None and not os.access(exe, os.X_OK):
            print(f"ours: skipped ({exe} not found; build it first)")
            results["runs"]["ours"] = {"skipped": f"{exe} not found"}
        else:
            print("ours:", shlex.join(argv), flush=True)
            r = run_child(argv, os.path.join(workdir, "ours.log"))
            tps = find_tokens_per_second(log) if r["exit_code"] == 0 else None
            if tps is not None:
                r.update(tokens_per_second=tps, tokens_per_second_source="log tokens_per_second")
            elif r["exit_code"] == 0:
                r.update(tokens_per_second=args.steps * args.batch * mean_positions / r["wall_seconds"],
                         tokens_per_second_source="wall time (includes load)")
            else:
                print(f"ours failed (exit {r['exit_code']}), see {workdir}/ours.log")
            results["runs"]["ours"] = r
    else:
        print("ours: skipped (no --ours command given)")

    print(f"\n{'trainer':8s} {'tok/s':>9s} {'s/step':>8s} {'wall s':>8s} {'peak RSS MiB':>13s}  source")
    for name, r in results["runs"].items():
        if "skipped" in r or "tokens_per_second" not in r:
            print(f"{name:8s} {'-':>9s} {'-':>8s} {'-':>8s} {'-':>13s}  {r.get('skipped', 'failed')}")
            continue
        sps = r.get("seconds_per_step", args.steps and r["wall_seconds"] / args.steps)
        print(f"{name:8s} {r['tokens_per_second']:9.0f} {sps:8.3f} {r['wall_seconds']:8.1f} "
              f"{r['peak_rss_mib']:13.0f}  {r['tokens_per_second_source']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
