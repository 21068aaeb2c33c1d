#!/usr/bin/env python3
"""The first requests of a fresh `qwen3 serve`, with and without its warm-up: time to first token and decode tok/s of
the first and the second streamed completion (64 token ids, 32 tokens, greedy), a fresh process each, alternating
which goes first, ROUNDS times each, the load average beside every run.

    tools/bench/warmup_ab.py QWEN3 MODEL [ROUNDS] [THREADS]
    e.g. tools/bench/warmup_ab.py src/Qwen3Sharp.Cli/bin/Release/net10.0/qwen3 /work/models/qwen3-1.7b-q8_0.gguf 4 2
"""
import http.client, json, os, random, re, subprocess, sys, time

qwen3, model = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
threads = sys.argv[4] if len(sys.argv) > 4 else str(os.cpu_count())
name, prompt_tokens, gen_tokens = os.path.basename(model.rstrip("/")), 64, 32


def stream(port, ids):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"model": name, "prompt": ids, "max_tokens": gen_tokens, "temperature": 0, "stream": True})
    start = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r, arrivals = c.getresponse(), []
    for line in r:
        if line.startswith(b"data: {"):
            choices = json.loads(line[6:]).get("choices") or []
            if choices and choices[0].get("finish_reason") is None:
                arrivals.append(time.perf_counter())
    c.close()
    if not arrivals:
        raise RuntimeError(f"no tokens streamed (HTTP {r.status})")
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else float("nan")
    return arrivals[0] - start, rate


for rnd in range(rounds):
    for mode in (["warm", "cold"] if rnd % 2 == 0 else ["cold", "warm"]):
        args = [qwen3, "serve", "--model", model, "--port", "0", "--threads", threads] + (["--no-warmup"] if mode == "cold" else [])
        start = time.perf_counter()
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            port, warm = None, ""
            for line in p.stdout:
                warm = line.strip() if "warmed up" in line else warm
                if m := re.search(r"on http://127\.0\.0\.1:(\d+)/v1", line):
                    port = int(m.group(1))
                    break
            ready = time.perf_counter() - start
            load = open("/proc/loadavg").read().split()[0]
            rng = random.Random(rnd)
            (t1, r1), (t2, r2) = (stream(port, [rng.randrange(1000, 100000) for _ in range(prompt_tokens)]) for _ in range(2))
            print(f"round {rnd} {mode}: ready after {ready:5.1f} s | first request TTFT {t1:5.2f} s, decode {r1:5.2f} tok/s | "
                  f"second TTFT {t2:5.2f} s, decode {r2:5.2f} tok/s | load {load} | {warm[len('qwen3 serve: '):]}", flush=True)
        finally:
            p.terminate()
            p.wait(timeout=60)
