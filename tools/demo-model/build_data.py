"""Renders and tokenizes the corpus through a running `qwen3 serve` (POST /apply-template, POST /tokenize), so the
training tokens are exactly what the engine feeds at inference: the official chat template, the tools system prompt,
the empty think block of non-thinking turns, and the engine's own tokenizer.

Each training row also says which of its tokens are copies (since v5): "copy" lists groups of token ids, one group per
entity (a city, timezone, tool name, name or item from corpus.py's training pools) that the completion writes with
tokens all found at that entity in the prompt, and "pmark" / "cmark" the prompt / completion positions that hold those
entities. train.py replaces such a group by random unused tokens in a share of the conversations, so the model learns
to copy a token it has no trained row for (a held-out city, tool-name piece or timezone piece) from the prompt. Since
v7, "omark" lists [group, position] for the prompt tokens that spell the same entity otherwise (`Paris` in an earlier
tool call or tool response where the question and the answer have ` Paris`): train.py replaces those too, as a
held-out city is unknown in every spelling.

usage: python3 build_data.py URL OUT_DIR   (e.g. http://127.0.0.1:18431 data)
"""
import json
import os
import re
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


# The copyable entities: training pools only (the held-out ones must stay unseen). Tool names that are ordinary words
# (`weather`, `clock`) are left out, and the kinds whose answer is a fixed text (greet, other) are never marked.
_COMMON = {"weather", "clock"}
# A timezone's region (`Europe`) is an ordinary trained word that is spelled differently after a space and after a
# quote; the part after the slash is the entity.
ENTITIES = sorted({*corpus.CITIES_TRAIN, *corpus.CITIES_TRAIN_ZH, *(z.split("/")[-1] for z in corpus.TZ_TRAIN), *corpus.NAMES, *corpus.NAMES_ZH,
                   *(n for n, _ in corpus.WEATHER_TOOL_TRAIN + corpus.TIME_TOOL_TRAIN if n not in _COMMON),
                   *(w for pair in corpus.ITEMS for w in pair)}, key=lambda e: (-len(e), e))
_ENTITY_RE = re.compile("|".join(f"(?<![A-Za-z0-9_]){re.escape(e)}(?![A-Za-z0-9_])" if e.isascii() else re.escape(e)
                                 for e in ENTITIES))
THINK_END = 151668  # </think>
COPY_KINDS = {"weather", "weather2", "weather_result", "time", "time_result", "no_tool", "arith"}


def entity_tokens(text, pieces):
    """{entity: [(position, token id)]} for the entity occurrences that whole tokens cover (a token may carry one
    leading space, quote or slash), and the set of entities some token only partly covers (those are not copies)."""
    spans, at = [], 0
    for t in pieces:
        spans.append((at, at + len(t["piece"]), t["id"]))
        at += len(t["piece"])
    found, dirty = {}, set()
    if "".join(t["piece"] for t in pieces) != text:
        return found, {"*"}
    for m in _ENTITY_RE.finditer(text):
        a, b = m.span()
        cover = [(k, s, e, i) for k, (s, e, i) in enumerate(spans) if s < b and e > a]
        if all(e <= b and (s >= a or (s == a - 1 and text[s] in ' "/')) for _, s, e, _ in cover):
            found.setdefault(m.group(), []).extend((k, i) for k, _, _, i in cover)
        else:
            dirty.add(m.group())
    return found, dirty


def copies(prompt, p_pieces, completion, c_pieces):
    """The copy groups and the positions they hold: per entity, the completion's tokens that the prompt has at the same
    entity. An entity is used only when the answer (after </think>) writes it with such tokens alone: reasoning may
    spell it otherwise (` Paris` there, `Paris` in the JSON), a tool call's arguments may not."""
    pf, _ = entity_tokens(prompt, p_pieces)
    cf, cd = entity_tokens(completion, c_pieces)
    if "*" in cd or not pf:
        return [], [], [], []
    ids = [t["id"] for t in c_pieces]
    think_end = ids.index(THINK_END) if THINK_END in ids else -1
    groups, pmark, cmark, omark = [], [], [], []
    for e, occ in cf.items():
        have = {i for _, i in pf.get(e, [])}
        if e in cd or any(i not in have for k, i in occ if k > think_end):
            continue
        same = {i for _, i in occ if i in have}
        if not same:
            continue
        omark += [[len(groups), k] for k, i in pf[e] if i not in same]
        groups.append(sorted(same))
        pmark += [k for k, i in pf[e] if i in same]
        cmark += [k for k, i in occ if i in same]
    return groups, sorted(set(pmark)), sorted(set(cmark)), omark


def render(base, ex):
    prompt = post(base + "/apply-template", ex["request"])["prompt"]
    pp = post(base + "/tokenize", {"content": prompt, "with_pieces": True})["tokens"]
    cp = post(base + "/tokenize", {"content": ex["completion"], "with_pieces": True})["tokens"]
    row = {"prompt": [t["id"] for t in pp], "completion": [t["id"] for t in cp], "kind": ex["kind"], "mode": ex["mode"]}
    if ex["kind"] in COPY_KINDS:
        row["copy"], row["pmark"], row["cmark"], row["omark"] = copies(prompt, pp, ex["completion"], cp)
    return row


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
    print(f"train {len(rows)} examples, tokens {sum(lens)}, len median {lens[len(lens)//2]} max {lens[-1]}; "
          f"{sum(bool(r.get('copy')) for r in rows)} with copyable entities")


if __name__ == "__main__":
    main()
