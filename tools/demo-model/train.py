"""Trains the Qwen3Sharp demo model: a small Qwen3 (the same forward as the engine: RMSNorm eps 1e-6, per-head q/k
RMSNorm before RoPE theta 1e6, GQA, SiLU-gated MLP, tied embeddings) on the rendered corpus. Loss only on assistant
tokens.

The trained rows are those of the tokens the corpus uses; every other token of the 151,936 has a fixed pseudo-random
row generated from its id (unused_rows.py; since v5, before that they all shared one trained row). In a share of the
conversations (DEMO_COPY_SHARE, default 0.5) the copyable entities that build_data.py marked (cities, timezone pieces,
tool-name pieces, names) are replaced by random unused tokens, so the model learns to copy a token it has no trained
row for from the prompt into its answer. The softmax runs over the trained rows, the batch's replacement tokens and
DEMO_UNUSED_SAMPLE (default 512) other unused rows drawn at random each step, their logits raised by
log(other unused / sampled): a sampled estimate of the full-vocabulary loss, so the model keeps the total probability
of the unused tokens small where it is not copying.

Since v6, in another share of the conversations (DEMO_NOISE_SHARE, default 0) some ordinary words of the user's turns
(tool responses too) that the completion does not write (not a copy entity, no template or
special token, no word the completion spells otherwise, no `/no_think`) are replaced by random unused tokens too (each distinct word with DEMO_NOISE_RATE,
default 0.25, at least one, only where there are three or more such words), so that "a token I was not trained on"
alone does not mean "copy it": only where the answer writes it does it get copied. Word-ness comes from the pieces of
the real tokenizer (DEMO_TOKENIZER, default assets/qwen3-tokenizer/tokenizer.json): a piece with a letter in it.

usage: nice -n 19 python3 train.py DATA_DIR OUT.npz [minutes] [RESUME.npz|RESUME.safetensors]
       RESUME: start from those weights (a checkpoint of this script, or the exported asset, v4's shared-row format
         too); rows are matched by token id, and a token the checkpoint has no row for starts as its generated row
         (or the shared row of a v4 checkpoint). Fresh optimizer and schedule.
       DEMO_TRAIN_THREADS: torch's thread count (default 1). DEMO_LR: the peak learning rate (default 3e-3).
       DEMO_KIND_WEIGHTS="arith=2.5,greet=0.3": how often each kind of conversation comes up per epoch (default 1).
       DEMO_COPY_SHARE, DEMO_COPY_WEIGHT, DEMO_UNUSED_SAMPLE: the copies (see above; the weight multiplies the loss at
       the positions that write a replacement token, default 1).
       DEMO_NOISE_SHARE, DEMO_NOISE_RATE, DEMO_TOKENIZER: the ordinary words replaced without a copy (see above).
       DEMO_OTHER_RATE (v7, default 0): where a copy entity is replaced, each of its other spellings in the prompt
         (build_data.py's "omark": `Paris` in an earlier tool call or tool response beside ` Paris` in the question)
         is replaced by a random unused token with this probability, as a held-out city is unknown in every spelling.
       DEMO_CORRUPT_SHARE, DEMO_CORRUPT_COUNT (v7, default 0 and 1): in that share of the conversations, that many
         completion tokens (never a copy) are replaced *as inputs* by random unused tokens while every target stays
         the true token: the model learns to carry on with the right text after a token it did not expect in its own
         answer (an unused token written by mistake) instead of drifting into more of them.
The logits (and the loss) are computed only at the assistant positions: the prompt positions need none.
"""
import os
import json
import re
import math
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import unused_rows

VOCAB = 151936
CFG = dict(hidden=128, layers=3, heads=4, kv_heads=2, head_dim=32, intermediate=384, theta=1_000_000.0, eps=1e-6)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):  # x [B, H, T, D]; rotate_half convention (HF Qwen3)
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return x * cos + torch.cat((-x2, x1), -1) * sin


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, hd = c["hidden"], c["head_dim"]
        self.c = c
        self.input_layernorm = RMSNorm(h, c["eps"])
        self.q_proj = nn.Linear(h, c["heads"] * hd, bias=False)
        self.k_proj = nn.Linear(h, c["kv_heads"] * hd, bias=False)
        self.v_proj = nn.Linear(h, c["kv_heads"] * hd, bias=False)
        self.o_proj = nn.Linear(c["heads"] * hd, h, bias=False)
        self.q_norm = RMSNorm(hd, c["eps"])
        self.k_norm = RMSNorm(hd, c["eps"])
        self.post_attention_layernorm = RMSNorm(h, c["eps"])
        self.gate_proj = nn.Linear(h, c["intermediate"], bias=False)
        self.up_proj = nn.Linear(h, c["intermediate"], bias=False)
        self.down_proj = nn.Linear(c["intermediate"], h, bias=False)

    def forward(self, x, cos, sin, mask):
        c = self.c
        B, T, _ = x.shape
        y = self.input_layernorm(x)
        q = self.q_norm(self.q_proj(y).view(B, T, c["heads"], c["head_dim"])).transpose(1, 2)
        k = self.k_norm(self.k_proj(y).view(B, T, c["kv_heads"], c["head_dim"])).transpose(1, 2)
        v = self.v_proj(y).view(B, T, c["kv_heads"], c["head_dim"]).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = c["heads"] // c["kv_heads"]
        k = k.repeat_interleave(rep, 1)
        v = v.repeat_interleave(rep, 1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(c["head_dim"]) + mask
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.o_proj(o)
        y = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))


class Model(nn.Module):
    def __init__(self, c, rows):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(rows, c["hidden"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["hidden"], c["eps"])
        nn.init.normal_(self.embed.weight, std=0.02)
        for l in self.layers:
            for m in (l.q_proj, l.k_proj, l.v_proj, l.o_proj, l.gate_proj, l.up_proj, l.down_proj):
                nn.init.normal_(m.weight, std=0.02)
            for m in (l.o_proj, l.down_proj):
                m.weight.data /= math.sqrt(2 * c["layers"])

    def forward(self, ids, where=None, table=None):
        """Logits [B, T, rows], or only at the positions `where` selects ([N, rows]): the loss needs no others.
        `table` replaces the embedding (tied: input rows and output rows), ids index it."""
        table = self.embed.weight if table is None else table
        B, T = ids.shape
        hd = self.c["head_dim"]
        inv = 1.0 / (self.c["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat((f, f), -1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((T, T), float("-inf")).triu(1)[None, None]
        x = F.embedding(ids, table)
        for l in self.layers:
            x = l(x, cos, sin, mask)
        if where is not None:
            x = x[where]
        return self.norm(x) @ table.t()  # tied


IM_START, IM_END, USER = 151644, 151645, 872
TOOL_CALL, TOOL_CALL_END = 151657, 151658
FIRST_SPECIAL = 151643
# The words a tool call rests on: a question keeps them, so that "a city and an unknown word" never means "call a tool"
INTENT = ("weather", "time", "clock", "hour", "rain", "umbrella", "cold", "forecast", "outside", "天气", "时间", "几点",
          "下雨", "冷", "时区", "当地")


def word_pieces(tokenizer_json):
    """(is_word, bytes) over the vocabulary, from the real tokenizer's byte-level pieces: is_word says the piece has a
    letter in it (or part of a multi-byte character); bytes is each piece's text as UTF-8 bytes."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:] + [256 + n for n in range(256 - len(bs))]
    bs += [b for b in range(256) if b not in bs]
    byte_of = {chr(c): b for b, c in zip(bs, cs)}
    vocab = json.load(open(tokenizer_json, encoding="utf-8"))["model"]["vocab"]
    word, raw = np.zeros(VOCAB, dtype=bool), [b""] * VOCAB
    for piece, i in vocab.items():
        raw[i] = bytes(byte_of[c] for c in piece)
        text = raw[i].decode("utf-8", errors="replace")
        word[i] = any(c.isalpha() or c == "\ufffd" for c in text)
    return word, raw


def noise_positions(r, word, raw):
    """The prompt positions whose word may be replaced by an unused token without a copy: in user turns (tool responses
    included; not the system prompt, not earlier assistant turns), the words (a run of word pieces, the later ones
    starting with a letter) that the completion does not write, neither as these tokens nor spelled otherwise
    (`"f`+`og`+`gy` in a tool response, ` foggy` in the answer), that are no copy entity and no INTENT word, and that hold
    no '/' and do not follow one (`/no_think`, `Asia/Tokyo`)."""
    prompt, need = r["prompt"], set(r["completion"]) | {t for g in r.get("copy") or [] for t in g}
    answer = b"".join(raw[t] for t in r["completion"] if t < FIRST_SPECIAL).decode("utf-8", errors="ignore")
    marked = set(r.get("pmark") or [])
    user, runs, k = False, [], 0
    while k < len(prompt):
        t = prompt[k]
        if t == IM_START:
            user = k + 1 < len(prompt) and prompt[k + 1] == USER
            k += 3  # `<|im_start|>user\n`
            continue
        if t == IM_END:
            user = False
        if user and t < FIRST_SPECIAL and word[t]:
            j, b = k + 1, raw[t]
            while j < len(prompt) and prompt[j] < FIRST_SPECIAL and word[prompt[j]] and (
                    raw[prompt[j]][:1].isalpha() or raw[prompt[j]][:1] == b"_" or b.decode("utf-8", errors="replace")[-1:] == "\ufffd"):
                b += raw[prompt[j]]
                j += 1
            slash = b"/" in b or (k > 0 and raw[prompt[k - 1]].endswith(b"/"))
            text = b.decode("utf-8", errors="ignore").strip(" \n\"'")
            if not slash and text and text not in answer and not any(w in text.lower() for w in INTENT) and not any(prompt[x] in need or x in marked for x in range(k, j)):
                runs.extend(range(k, j))
            k = j
            continue
        k += 1
    return np.array(runs, dtype=np.int64)


def load(data_dir):
    rows = [json.loads(l) for l in open(f"{data_dir}/train.jsonl")]
    used = sorted({t for r in rows for t in r["prompt"] + r["completion"]})
    return rows, used


def load_weights(path):
    """(used token ids, {name: array}) from a train.py .npz or an export.py .safetensors (names mapped back). The
    embedding has one row per used token, plus one last shared row in the v4 format (no "unused_rows" metadata)."""
    if path.endswith(".npz"):
        z = np.load(path)
        return [int(t) for t in z["used"]], {k: z[k] for k in z.files if k not in ("used", "config", "unused_rows")}
    import struct
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    back = {"model.embed_tokens.weight": "embed.weight", "model.norm.weight": "norm.weight"}
    out, used = {}, None
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype={"F32": np.float32, "I32": np.int32}[h["dtype"]]).reshape(h["shape"])
        if name == "used_token_ids":
            used = [int(t) for t in arr]
        elif name in back:
            out[back[name]] = arr.copy()
        else:  # model.layers.{i}.self_attn.q_proj.weight -> layers.{i}.q_proj.weight
            parts = name.split(".")
            out[f"layers.{parts[2]}." + ".".join(p for p in parts[3:] if p not in ("self_attn", "mlp"))] = arr.copy()
    return used, out


def save(model, used, out):
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    np.savez(out, used=np.array(used, dtype=np.int64), config=json.dumps(CFG),
             unused_rows=json.dumps(unused_rows.metadata()), **sd)


def full_embedding(used, emb):
    """[VOCAB, hidden]: the trained rows at their token ids, the generated rows everywhere else."""
    full = unused_rows.rows(np.arange(VOCAB), emb.shape[1])
    full[np.asarray(used)] = emb[:len(used)]
    return full


def main():
    data_dir, out = sys.argv[1], sys.argv[2]
    minutes = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
    torch.manual_seed(1234)
    random.seed(1234)
    # measured: one thread is ~5x faster than two on the shared 2-core machine at load 25-35; two pay off when it is idle
    torch.set_num_threads(int(os.environ.get("DEMO_TRAIN_THREADS", "1")))
    rows, used = load(data_dir)
    U = len(used)
    remap = np.full(VOCAB, -1, dtype=np.int64)
    remap[used] = np.arange(U)
    print(f"trained rows {U}, examples {len(rows)}", flush=True)
    fixed = torch.from_numpy(unused_rows.rows(np.arange(VOCAB), CFG["hidden"]))  # [VOCAB, hidden], never trained
    unused = np.setdiff1d(np.arange(VOCAB), used)           # every token without a trained row
    replaceable = unused[unused < 151643]                   # text tokens (no special or padding ids) for the copies
    model = Model(CFG, U)
    if len(sys.argv) > 4:
        old_used, w = load_weights(sys.argv[4])
        old_row = {t: i for i, t in enumerate(old_used)}
        e = w["embed.weight"]
        shared = e.shape[0] > len(old_used)  # v4: one last row for every unused token
        w["embed.weight"] = np.stack([e[old_row[t]] if t in old_row else e[len(old_used)] if shared else fixed[t].numpy()
                                      for t in used])
        added = sum(t not in old_row for t in used)
        model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(w[k])) for k in model.state_dict()})
        print(f"resumed from {sys.argv[4]} ({added} tokens new to it{', v4 shared-row format' if shared else ''})", flush=True)
    print("params", sum(p.numel() for p in model.parameters()), flush=True)
    seqs = [np.array(r["prompt"] + r["completion"], dtype=np.int64) for r in rows]  # token ids
    # DEMO_KIND_WEIGHTS="arith=2,weather=3": repeat those conversations (whole repeats, then a seeded fraction)
    weights = dict((k, float(v)) for k, v in (p.split("=") for p in os.environ.get("DEMO_KIND_WEIGHTS", "").split(",") if p))
    pick = random.Random(99)
    pool = []
    for i, r in enumerate(rows):
        w = weights.get(r["kind"], 1.0)
        pool += [i] * int(w) + ([i] if pick.random() < w - int(w) else [])
    print("per epoch", len(pool), "conversations", flush=True)
    order = sorted(pool, key=lambda i: len(seqs[i]))
    TOK = 2500  # tokens per batch (padded)
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * len(seqs[i]) > TOK:
            batches.append(cur)
            cur = []
        cur.append(i)
    batches.append(cur)
    peak = float(os.environ.get("DEMO_LR", "3e-3"))
    opt = torch.optim.AdamW(model.parameters(), lr=peak, betas=(0.9, 0.98), weight_decay=0.01)
    copy_share = float(os.environ.get("DEMO_COPY_SHARE", "0.5"))
    sample = int(os.environ.get("DEMO_UNUSED_SAMPLE", "512"))
    copy_weight = float(os.environ.get("DEMO_COPY_WEIGHT", "1"))  # the loss weight of the positions that write a copy
    rng = np.random.default_rng(4321)
    noise_share = float(os.environ.get("DEMO_NOISE_SHARE", "0"))
    noise_rate = float(os.environ.get("DEMO_NOISE_RATE", "0.25"))
    other_rate = float(os.environ.get("DEMO_OTHER_RATE", "0"))
    corrupt_share = float(os.environ.get("DEMO_CORRUPT_SHARE", "0"))
    corrupt_count = int(os.environ.get("DEMO_CORRUPT_COUNT", "1"))
    noisy = [np.zeros(0, dtype=np.int64)] * len(rows)
    if noise_share > 0:
        tok = os.environ.get("DEMO_TOKENIZER") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                "../../assets/qwen3-tokenizer/tokenizer.json")
        word, raw = word_pieces(tok)
        noisy = [noise_positions(r, word, raw) for r in rows]
        have = [len(np.unique(seqs[i][p])) for i, p in enumerate(noisy)]
        print(f"noise: {sum(h >= 3 for h in have)} conversations with 3+ replaceable words, "
              f"median {sorted(have)[len(have) // 2]} words", flush=True)

    def with_copies(i):
        """Conversation i's token ids, with (in a share of them) its copyable entities' tokens replaced by random
        unused tokens: each entity with probability 0.8, each of its tokens with 0.85 (at least one); and (in another
        share) some of its ordinary prompt words that the completion does not write."""
        ids, r = seqs[i], rows[i]
        groups = r.get("copy") or []
        swap, other = {}, {}
        if groups and rng.random() < copy_share:
            for gi, g in enumerate(groups):
                if rng.random() < 0.8:
                    keep = [t for t in g if rng.random() < 0.85] or [g[rng.integers(len(g))]]
                    swap.update((t, int(replaceable[rng.integers(len(replaceable))])) for t in keep)
                    # the entity's other spellings (an earlier tool call, a tool response): unknown too
                    for k in (k for gj, k in r.get("omark") or [] if gj == gi and rng.random() < other_rate):
                        other[k] = int(replaceable[rng.integers(len(replaceable))])
        noise = {}
        words = np.unique(ids[noisy[i]]) if len(noisy[i]) else []
        if len(words) >= 3 and rng.random() < noise_share:
            pick = [int(t) for t in words if rng.random() < noise_rate] or [int(words[rng.integers(len(words))])]
            noise = {t: int(replaceable[rng.integers(len(replaceable))]) for t in pick}
        n = len(r["prompt"])
        corrupt = []
        if rng.random() < corrupt_share:
            marked = set(r.get("cmark") or []) if swap else set()
            can = [k for k in range(len(r["completion"]) - 1) if r["completion"][k] < FIRST_SPECIAL and k not in marked]
            if can:
                corrupt = [n + can[rng.integers(len(can))] for _ in range(corrupt_count)]
        if not swap and not noise and not other and not corrupt:
            return ids, ids
        ids = ids.copy()
        for k in (r["pmark"] + [n + k for k in r["cmark"]]) if swap else []:
            ids[k] = swap.get(int(ids[k]), ids[k])
        for k, t in other.items():
            ids[k] = t
        for k in noisy[i]:
            ids[k] = noise.get(int(ids[k]), ids[k])
        if not corrupt:
            return ids, ids
        inputs = ids.copy()
        for k in corrupt:
            inputs[k] = int(replaceable[rng.integers(len(replaceable))])
        return inputs, ids
    t0 = time.time()
    deadline = t0 + minutes * 60
    step, est_total = 0, None
    epoch = 0
    while time.time() < deadline:
        rnd = random.Random(epoch)
        ep = batches[:]
        rnd.shuffle(ep)
        for b in ep:
            now = time.time()
            if now >= deadline:
                break
            frac = (now - t0) / (deadline - t0)
            lr = peak * min(1.0, (step + 1) / 30) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = lr
            pairs = [with_copies(i) for i in b]
            convs = [c for c, _ in pairs]
            # this batch's table: trained rows, the replacement tokens' fixed rows, a sample of other unused rows
            present = np.unique(np.concatenate(convs + [t for _, t in pairs]))
            present = present[remap[present] < 0]
            others = rng.choice(unused, sample + len(present), replace=False)
            others = others[~np.isin(others, present)][:sample]
            local = remap.copy()
            local[present] = U + np.arange(len(present))
            table = torch.cat((model.embed.weight, fixed[present], fixed[others]))
            bias = torch.zeros(len(table))
            bias[U + len(present):] = math.log((len(unused) - len(present)) / len(others))
            T = max(len(c) for c in convs)
            ids = torch.zeros((len(b), T), dtype=torch.long)
            lab = torch.full((len(b), T), -100, dtype=torch.long)
            for j, (i, (c, target_ids)) in enumerate(zip(b, pairs)):
                n, p = len(c), len(rows[i]["prompt"])
                ids[j, :n] = torch.from_numpy(local[c])
                lab[j, p - 1:n - 1] = torch.from_numpy(local[target_ids[p:n]])  # a corrupted input still has its own token as the target
            where = lab != -100
            logits = model(ids, where, table) + bias
            target = lab[where]
            each = F.cross_entropy(logits, target, reduction="none")
            copied = target >= U  # the positions that write a replacement token
            loss = (each * torch.where(copied, copy_weight, 1.0)).sum() / (len(each) + (copy_weight - 1) * copied.sum())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if step % 20 == 0:
                hit = (logits.argmax(-1) == target)[copied].float().mean().item() if copied.any() else 0.0
                cl = f"{each[copied].mean().item():.4f}, argmax right {hit:.2f}, on {int(copied.sum())}" if copied.any() else "-"
                print(f"step {step} epoch {epoch} loss {loss.item():.4f} (copies {cl}) lr {lr:.5f} t {now - t0:.0f}s", flush=True)
            step += 1
            if step % 100 == 0:
                save(model, used, out)
        epoch += 1
    save(model, used, out)
    print(f"saved {out} after {step} steps, {epoch} epochs, {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
