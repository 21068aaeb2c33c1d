"""Checks that the engine computes the same model as train.py: greedy-decodes a few prompts in torch (full-vocabulary
log-softmax: the used rows plus, since v5, the generated row of every other token; before, the one shared row) and
compares the top log-probabilities the server reports (/v1/chat/completions, logprobs) position by position.

usage: python3 compare.py URL MODEL.npz
"""
import json
import math
import sys
import urllib.request

import numpy as np
import torch

import train

MODEL = "qwen3sharp-demo-tiny-v7"


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def main():
    base, path = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    z = np.load(path)
    used = z["used"]
    sd = {k: torch.from_numpy(z[k]).double() for k in z.files if k not in ("used", "config", "unused_rows")}
    if "unused_rows" in z.files:  # v5: every token has its own row; the model runs over the full vocabulary
        sd["embed.weight"] = torch.from_numpy(train.full_embedding(used, z["embed.weight"])).double()
        remap = {t: t for t in range(train.VOCAB)}
        unk, log_unused = train.VOCAB, 0.0
    else:
        remap = {int(t): i for i, t in enumerate(used)}
        unk = len(used)
        log_unused = math.log(train.VOCAB - len(used))
    model = train.Model(json.loads(str(z["config"])), len(sd["embed.weight"])).double()
    model.load_state_dict(sd)
    trained = torch.zeros(len(sd["embed.weight"]), dtype=torch.bool)
    trained[torch.from_numpy(np.asarray(used))] = True
    worst = 0.0
    worst_unused = 0.0
    for req in [{"messages": [{"role": "user", "content": "Hello"}]},
                {"messages": [{"role": "user", "content": "What's the weather in Paris?"}],
                 "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather.",
                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]},
                {"messages": [{"role": "user", "content": "Tom has 5 apples. Tom eats 2. How many apples does Tom have now?"}],
                 "enable_thinking": False}]:
        prompt = post(base + "/apply-template", req)["prompt"]
        ids = post(base + "/tokenize", {"content": prompt})["tokens"]
        body = dict(req, model=MODEL, temperature=0, max_tokens=12, logprobs=True, top_logprobs=5)
        got = post(base + "/v1/chat/completions", body)["choices"][0]["logprobs"]["content"]
        seq = [remap.get(t, unk) for t in ids]
        for pos, entry in enumerate(got):
            with torch.no_grad():
                logits = model(torch.tensor([seq]))[0, -1]
            full = torch.cat([logits[:unk], logits[unk:] + log_unused])  # v4: the shared row stands for all unused tokens
            lse = torch.logsumexp(full, 0)
            top = torch.topk(full - lse, 5).values.tolist()
            mine = [e["logprob"] for e in entry["top_logprobs"]]
            unused = full[len(trained):] if unk < train.VOCAB else full[~trained]
            unused_mass = math.exp(float(torch.logsumexp(unused, 0) - lse))
            worst_unused = max(worst_unused, unused_mass)
            d = max(abs(a - b) for a, b in zip(top, mine))
            worst = max(worst, d)
            print(f"pos {pos} token {entry['token']!r} torch {top[:3]} engine {mine[:3]} max|d| {d:.2e}")
            seq.append(int(torch.argmax(logits)))
    print(f"max |logprob difference| {worst:.2e}; largest total probability of all unused tokens together {worst_unused:.2e}")


if __name__ == "__main__":
    main()
