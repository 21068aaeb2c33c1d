"""Writes the trained demo model as the compact resource the `qwen3` program embeds:
assets/demo-model/demo-model.safetensors, a safetensors file whose tensors carry the Hugging Face names, F32, except
that model.embed_tokens.weight holds only the rows of the tokens the corpus uses; used_token_ids (I32) says which token
each row is. Every other token of the 151,936 gets the row that unused_rows.py generates from its id; the header's
metadata says how ("unused_rows": generator, seed, scale_log2). A checkpoint without it (v4 and before) has one more,
last, row that every other token shares. The model config is in the metadata too ("config"). The program expands this
into a normal HF directory (DemoModel.Ensure).

usage: python3 export.py MODEL.npz OUT.safetensors
       python3 export.py --hf-dir MODEL.npz DIR   (a full HF directory, for checks)
"""
import json
import struct
import sys

import numpy as np

import unused_rows

VOCAB = 151936


def hf_name(k):
    if k == "embed.weight":
        return "model.embed_tokens.weight"
    if k == "norm.weight":
        return "model.norm.weight"
    _, i, rest = k.split(".", 2)
    attn = ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")
    mlp = ("gate_proj", "up_proj", "down_proj")
    mod = rest.split(".")[0]
    prefix = "self_attn." if mod in attn else "mlp." if mod in mlp else ""
    return f"model.layers.{i}.{prefix}{rest}"


def config_json(c):
    return {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": c["hidden"],
        "intermediate_size": c["intermediate"], "num_hidden_layers": c["layers"], "num_attention_heads": c["heads"],
        "num_key_value_heads": c["kv_heads"], "head_dim": c["head_dim"], "vocab_size": VOCAB,
        "max_position_embeddings": 40960, "rope_theta": c["theta"], "rms_norm_eps": c["eps"],
        "tie_word_embeddings": True, "torch_dtype": "float32", "hidden_act": "silu", "attention_bias": False,
        "bos_token_id": 151643, "eos_token_id": 151645, "max_window_layers": c["layers"], "use_sliding_window": False,
    }


def write_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, arr in tensors:
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[arr.dtype]
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    z = np.load(sys.argv[1])
    cfg = json.loads(str(z["config"]))
    tensors = [("used_token_ids", z["used"].astype(np.int32))]
    for k in sorted(z.files):
        if k in ("used", "config", "unused_rows"):
            continue
        tensors.append((hf_name(k), z[k].astype(np.float32)))
    metadata = {"format": "pt", "config": json.dumps(config_json(cfg))}
    if "unused_rows" in z.files:
        metadata["unused_rows"] = str(z["unused_rows"])
    write_safetensors(sys.argv[2], tensors, metadata)
    print("wrote", sys.argv[2], sum(t.nbytes for _, t in tensors), "bytes")




def write_hf_dir(npz, directory):
    """A full Hugging Face directory straight from the .npz (for checking a checkpoint without rebuilding qwen3)."""
    import os
    import shutil
    z = np.load(npz)
    cfg = json.loads(str(z["config"]))
    os.makedirs(directory, exist_ok=True)
    used = z["used"]
    emb = z["embed.weight"].astype(np.float32)
    if "unused_rows" in z.files:
        g = json.loads(str(z["unused_rows"]))
        full = unused_rows.rows(np.arange(VOCAB), emb.shape[1], g["seed"], g["scale_log2"], g.get("shared_id"))
        full[used] = emb
    else:  # v4: one shared last row
        full = np.repeat(emb[-1:], VOCAB, axis=0)
        full[used] = emb[:-1]
    tensors = [(hf_name(k), full if k == "embed.weight" else z[k].astype(np.float32))
               for k in sorted(z.files) if k not in ("used", "config", "unused_rows")]
    write_safetensors(os.path.join(directory, "model.safetensors"), tensors, {"format": "pt"})
    json.dump(config_json(cfg), open(os.path.join(directory, "config.json"), "w"))
    json.dump({"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
               "temperature": 0.6, "top_k": 20, "top_p": 0.95}, open(os.path.join(directory, "generation_config.json"), "w"))
    here = os.path.dirname(os.path.abspath(__file__))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(here, "..", "..", "assets", "qwen3-tokenizer", f), directory)


if __name__ == "__main__":
    if sys.argv[1] == "--hf-dir":
        write_hf_dir(sys.argv[2], sys.argv[3])
    else:
        main()
