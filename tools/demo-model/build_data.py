"""Renders and tokenizes the corpus through a running `qwen3 serve` (POST /apply-template, POST /tokenize), so the
training tokens are exactly what the engine feeds at inference: the official chat template, the tools system prompt,
the empty think block of non-thinking turns, and the engine's own tokenizer.

usage: python3 build_data.py URL OUT_DIR   (e.g. http://127.0.0.1:18431 data)
"""
import json
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import corpus

TRAIN_COUNT = 16000
HELD_COUNT = 400
SEED_TRAIN = 20260
SEED_HELD = 777


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def render(base, ex):
    prompt = post(base + "/apply-template", ex["request"])["prompt"]
    p = post(base + "/tokenize", {"content": prompt})["tokens"]
    c = post(base + "/tokenize", {"content": ex["completion"]})["tokens"]
    return {"prompt": p, "completion": c, "kind": ex["kind"], "mode": ex["mode"]}


def main():
    base, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    train = corpus.generate(TRAIN_COUNT, SEED_TRAIN, held=False)
    held = corpus.generate(HELD_COUNT, SEED_HELD, held=True)
    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(lambda e: render(base, e), train))
    with open(os.path.join(out, "train.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out, "heldout.jsonl"), "w") as f:
        for e in held:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    # the held-out prompts' tokens, to report which of them the model has never seen
    with ThreadPoolExecutor(4) as pool:
        hrows = list(pool.map(lambda e: render(base, e), held))
    with open(os.path.join(out, "heldout_tokens.jsonl"), "w") as f:
        for r in hrows:
            f.write(json.dumps(r) + "\n")
    lens = sorted(len(r["prompt"]) + len(r["completion"]) for r in rows)
    print(f"train {len(rows)} examples, tokens {sum(lens)}, len median {lens[len(lens)//2]} max {lens[-1]}")


if __name__ == "__main__":
    main()
