"""Held-out evaluation through the engine: sends every held-out conversation (other cities, numbers, phrasings, names
and tool names than training) to a running `qwen3 serve` with greedy decoding and checks the exact format:
tool calls (names and arguments), final sums, the reasoning split (reasoning_content vs content), expected strings.

usage: python3 eval.py URL HELDOUT.jsonl [limit]
"""
import json
import os
import re
import sys
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

MODEL = os.environ.get("DEMO_MODEL_NAME", "qwen3sharp-demo-tiny-v7")


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def check(ex, msg, finish):
    e, mode = ex["expect"], ex["mode"]
    content = msg.get("content") or ""
    reasoning = msg.get("reasoning_content") or ""
    calls = msg.get("tool_calls") or []
    if "<think>" in content or "</think>" in content or "<tool_call>" in content:
        return "markup in content"
    if mode == "think" and not reasoning.strip():
        return "no reasoning"
    if mode != "think" and reasoning.strip():
        return "reasoning when thinking is off"
    if "calls" in e:
        got = [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])} for c in calls]
        if got != e["calls"]:
            return f"calls {got} != {e['calls']}"
        return None if finish == "tool_calls" else f"finish_reason {finish}"
    if e.get("no_call") and calls:
        return f"unexpected call {calls[0]['function']}"
    if finish != "stop":
        return f"finish_reason {finish}"
    for s in e.get("contains", []):
        if s not in content:
            return f"missing {s!r}"
    if "answer_number" in e:
        nums = re.findall(r"\d+", content)
        if not nums or int(nums[-1]) != e["answer_number"]:
            return f"answer {nums[-1:] } != {e['answer_number']}"
    return None


def run(base, ex):
    body = dict(ex["request"])
    body.update({"model": MODEL, "temperature": 0, "max_tokens": 160})
    r = post(base + "/v1/chat/completions", body)
    ch = r["choices"][0]
    return check(ex, ch["message"], ch["finish_reason"]), ch["message"]


def prompt_tokens(base, ex):
    """The ids of the conversation's rendered prompt, as the engine feeds them."""
    prompt = post(base + "/apply-template", ex["request"])["prompt"]
    return {t["id"] for t in post(base + "/tokenize", {"content": prompt, "with_pieces": True})["tokens"]}


def producible(base, ex, used):
    """Whether the model can write what the check needs at all: every token of it has a row of its own (v4: a token the
    training corpus never uses shares the one unused row, which the model learns never to pick; since v5 such a token
    has a generated row and can be written by copying it from the prompt, so pass the trained ids plus the prompt's to
    ask "copyable"). Taken from the reference completion's tokens that cover the needed text (calls: the whole
    completion; sums: the digits)."""
    pieces = post(base + "/tokenize", {"content": ex["completion"], "with_pieces": True})["tokens"]
    text, spans = "", []
    for t in pieces:
        spans.append((len(text), len(text) + len(t["piece"]), t["id"]))
        text += t["piece"]
    e = ex["expect"]
    if text != ex["completion"] or "calls" in e:
        return all(t["id"] in used for t in pieces)
    need = list(e.get("contains", [])) + ([str(e["answer_number"])] if "answer_number" in e else [])
    for s in need:
        at = text.rfind(s)
        if at < 0 or not all(i in used for a, b, i in spans if a < at + len(s) and b > at):
            return False
    return True


def main():
    base, path = sys.argv[1], sys.argv[2]
    rows = [json.loads(l) for l in open(path)]
    if len(sys.argv) > 3:
        rows = rows[:int(sys.argv[3])]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda e: run(base, e), rows))
    # the training set next to the held-out one gives the tokens the model has rows for
    train = os.path.join(os.path.dirname(path), "train.jsonl")
    used = {t for l in open(train) for r in [json.loads(l)] for t in r["prompt"] + r["completion"]} \
        if os.path.exists(train) else None
    total, ok, can, copy = Counter(), Counter(), Counter(), Counter()
    for ex, (err, msg) in zip(rows, results):
        k = ex["kind"]
        total[k] += 1
        if used is not None and producible(base, ex, used):
            can[k] += 1
            copy[k] += 1
        elif used is not None and producible(base, ex, used | prompt_tokens(base, ex)):
            copy[k] += 1
            if err is not None:
                err += " (needs a token with no trained row, found in the prompt: a copy)"
        elif used is not None and err is not None:
            err += " (needs a token with no trained row that the prompt does not have either)"
        if err is None:
            ok[k] += 1
        else:
            print(f"FAIL [{k}/{ex['mode']}] {ex['request']['messages'][-1]['content'][:70]!r}: {err} | "
                  f"{json.dumps(msg, ensure_ascii=False)[:240]}")
    for k in sorted(total):
        print(f"{k:16s} {ok[k]:4d}/{total[k]:4d}" + (f"   producible {can[k]:4d}   by copying too {copy[k]:4d}" if used is not None else ""))
    n, g = sum(total.values()), sum(ok.values())
    print(f"TOTAL {g}/{n} = {100.0 * g / n:.1f}% exact-format success (greedy)"
          + (f"; {sum(can.values())}/{n} producible with the trained rows alone, {sum(copy.values())}/{n} with copies "
             "of prompt tokens too" if used is not None else ""))


if __name__ == "__main__":
    main()
