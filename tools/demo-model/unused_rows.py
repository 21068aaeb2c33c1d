"""The embedding rows of the tokens the demo corpus never uses: fixed pseudo-random values generated from the token id,
so the asset stores only the trained rows and the expanded directory still has a distinct row for every token (the
model learns to copy such a token from the prompt). Exactly reproducible in any language, no floating-point library:

    value(id, j) = (k(id, j) + k(SHARED_ID, j)) * 2^-SCALE_LOG2
    k(i, j) = 2 * (z >> 53) - 2047,   z = the (i * hidden + j + 1)-th output of SplitMix64(seed)

where SplitMix64's n-th output is mix(seed + n * 0x9E3779B97F4A7C15) (mod 2^64) and
mix(x) = x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27; x *= 0x94D049BB133111EB; x ^= x >> 31.
So every row is its own random vector (odd integers in [-2047, 2047] times 2^-13: uniform in (-0.25, 0.25), standard
deviation ~0.144, the scale of the trained rows, RMS 0.163 in v4) plus one vector that all of them share (the same
generator at the pseudo id 2^32, not a token): the shared part lets attention find "a token I was not trained on" by its
content, the own part says which one to copy. Sums of two such integers times 2^-13 are exact in float32.
DemoModel.Write (src/Qwen3Sharp.Cli/ModelSource.cs) is the C# twin.
"""
import numpy as np

GENERATOR = "splitmix64-odd11"
SHARED_ID = 1 << 32
SEED = 20261206
SCALE_LOG2 = 13
GAMMA = 0x9E3779B97F4A7C15


def metadata():
    return {"generator": GENERATOR, "seed": SEED, "scale_log2": SCALE_LOG2, "shared_id": SHARED_ID}


def rows(ids, hidden, seed=SEED, scale_log2=SCALE_LOG2, shared_id=SHARED_ID):
    """float32 [len(ids), hidden]: the generated rows of those token ids."""
    k = odd(ids, hidden, seed) + (odd([shared_id], hidden, seed) if shared_id is not None else 0)
    return (k.astype(np.float32) * np.float32(2.0 ** -scale_log2)).astype(np.float32)


def odd(ids, hidden, seed):
    """int64 [len(ids), hidden]: k(i, j), odd integers in [-2047, 2047]."""
    ids = np.asarray(ids, dtype=np.uint64).reshape(-1, 1)
    n = ids * np.uint64(hidden) + np.arange(1, hidden + 1, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        x = np.uint64(seed) + n * np.uint64(GAMMA)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(53)).astype(np.int64) * 2 - 2047


if __name__ == "__main__":
    # the C# test's fixture: a few ids, the first and last values of each row
    import json
    import sys
    hidden = int(sys.argv[1]) if len(sys.argv) > 1 else 128
    ids = [0, 1, 2, 151642, 151935]
    r = rows(ids, hidden)
    print(json.dumps({**metadata(), "hidden": hidden, "rows": {str(i): [float(v) for v in r[k]] for k, i in enumerate(ids)}}))
