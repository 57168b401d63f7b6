#!/usr/bin/env python3
"""Load test for `softprompt serve` (loopback only, bounded request count and time; stdlib only).

For each concurrency level (default 1, 4, 16) it runs two loads of the same requests:
  mixed       N clients at once, each request's task drawn round-robin from --tasks
  one-by-one  the same requests grouped by task, one task at a time (N clients within a task)
and reports requests/s, generated tokens/s, latency p50/p90/p99 and time to first token p50 (streamed).

  python3 Tools/scripts/serve_load.py --port 8080 --tasks smollm2:a,smollm2:b,smollm2 --requests 32
  python3 Tools/scripts/serve_load.py --start ".build/release/softprompt serve --bank bank.sprompt --port 8090" --port 8090 ...
"""
import argparse
import http.client
import json
import shlex
import subprocess
import sys
import threading
import time

PROMPTS = ["The capital of France is", "Once upon a time", "Write a list of fruits:", "1, 2, 3,",
           "The weather today", "def fibonacci(n):", "My favourite book is", "Translate to French: cat"]


def one_request(port, model, prompt, max_tokens, timeout):
    """Streams one completion; returns (latency s, ttft s, tokens)."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "return_token_ids": True})
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"{model}: HTTP {resp.status}: {resp.read()[:200]!r}")
    ttft = None
    tokens = 0
    for raw in resp:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if "error" in chunk:
            raise RuntimeError(chunk["error"]["message"])
        choice = chunk["choices"][0]
        if ttft is None and (choice.get("text") or choice.get("finish_reason")):
            ttft = time.monotonic() - start
        if "token_ids" in choice:
            tokens = len(choice["token_ids"])
    conn.close()
    return time.monotonic() - start, ttft if ttft is not None else time.monotonic() - start, tokens


def run_load(port, jobs, clients, max_tokens, deadline, timeout):
    """Runs `jobs` [(model, prompt)] with `clients` threads; returns (wall s, [(lat, ttft, tokens)])."""
    lock = threading.Lock()
    queue = list(jobs)
    results = []
    errors = []

    def worker():
        while True:
            with lock:
                if not queue or time.monotonic() > deadline:
                    return
                model, prompt = queue.pop(0)
            try:
                r = one_request(port, model, prompt, max_tokens, timeout)
                with lock:
                    results.append(r)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"  {len(errors)} errors, first: {errors[0]}", file=sys.stderr)
    return time.monotonic() - start, results


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))
    return v[k]


def summary(label, clients, wall, results):
    lat = [r[0] for r in results]
    ttft = [r[1] for r in results]
    toks = sum(r[2] for r in results)
    return (f"| {label:<10} | {clients:>2} | {len(results):>4} | {len(results) / wall:7.2f} | {toks / wall:8.1f} | "
            f"{pct(lat, 50):6.2f} | {pct(lat, 90):6.2f} | {pct(lat, 99):6.2f} | {pct(ttft, 50):6.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--tasks", required=True, help="comma-separated model ids (e.g. smollm2:a,smollm2:b,smollm2)")
    ap.add_argument("--requests", type=int, default=32, help="requests per load (bounded)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--time-limit", type=float, default=600, help="seconds for the whole run; later loads stop early")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per request")
    ap.add_argument("--start", help="command that starts the server (it must bind 127.0.0.1); stopped with SIGTERM at the end")
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    server = None
    if args.start:
        server = subprocess.Popen(shlex.split(args.start))
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            server.terminate()
            sys.exit("the server did not come up")
    deadline = time.monotonic() + args.time_limit
    try:
        # Warm-up: one request per task (computes every prefix once).
        for t in tasks:
            one_request(args.port, t, "Hello", 2, args.timeout)
        print(f"tasks {', '.join(tasks)}; {args.requests} requests per load, max_tokens {args.max_tokens}, greedy, streamed\n")
        print("| load       |  N | reqs |  req/s  |  tok/s   |  p50 s |  p90 s |  p99 s | TTFT50 |")
        print("|------------|----|------|---------|----------|--------|--------|--------|--------|")
        jobs = [(tasks[i % len(tasks)], PROMPTS[i % len(PROMPTS)]) for i in range(args.requests)]
        for n in [int(c) for c in args.concurrency.split(",")]:
            wall, results = run_load(args.port, jobs, n, args.max_tokens, deadline, args.timeout)
            print(summary("mixed", n, wall, results), flush=True)
            # The same requests, one task after another.
            total_wall, all_results = 0.0, []
            for t in tasks:
                w, r = run_load(args.port, [j for j in jobs if j[0] == t], n, args.max_tokens, deadline, args.timeout)
                total_wall += w
                all_results += r
            print(summary("one-by-one", n, total_wall, all_results), flush=True)
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
