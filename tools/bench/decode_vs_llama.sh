#!/usr/bin/env bash
# Decode (or prefill, PHASE=prefill) beside llama.cpp in alternation: per model and round, `qwen3 bench` then `llama-bench` on the same file right
# after it, each line with its time, our run's read bandwidth and the pair's ratio. On a machine whose memory speed
# flips within minutes (the Zen 5: 48-50 or 80-86 GB/s) a ratio means something only for runs seconds apart.
#
#   tools/bench/decode_vs_llama.sh QWEN3 ROUNDS MODEL.gguf...
#   e.g. tools/bench/decode_vs_llama.sh /work/bin/qwen3 3 /work/models/qwen3-1.7b-q8_0.gguf /work/models/qwen3-1.7b-q4_0.gguf
#
# Ours: qwen3 bench --threads 2 --prompt-tokens 16 --gen-tokens 64 --bound-windows 0; llama.cpp: llama-bench -t 2 -p 0
# -n 64 -r 1. LLAMA_BIN overrides the llama.cpp bin folder (default /work/llama/llama.cpp/build/bin). Run it quiet.
# PHASE=prefill compares prefill of 512 tokens instead: qwen3 bench --prompt-tokens 512 --gen-tokens 4, llama-bench -p 512 -n 0;
# PROMPT=N another prompt length (PROMPT=2048: a long prompt, where attention is a quarter of our prefill).
set -euo pipefail
qwen3=${1:?qwen3}; rounds=${2:?rounds}; shift 2
llama_bin=${LLAMA_BIN:-/work/llama/llama.cpp/build/bin}
phase=${PHASE:-decode}
prompt=${PROMPT:-512}
for m in "$@"; do
  for r in $(seq 1 "$rounds"); do
    t=$(date -u +%H:%M:%S)
    if [ "$phase" = prefill ]; then
      read -r ours gbs < <("$qwen3" bench --model "$m" --threads 2 --prompt-tokens "$prompt" --gen-tokens 4 --bound-windows 0 \
        | awk '/^prefill /{d=$2} /^bandwidth/{b=$2} END{print d, b}')
      theirs=$("$llama_bin/llama-bench" -m "$m" -t 2 -p "$prompt" -n 0 -r 1 2>/dev/null | awk -F'|' -v pp="pp$prompt" '$0 ~ pp {gsub(/ /, "", $8); split($8, a, "±"); print a[1]}')
    else
      read -r ours gbs < <("$qwen3" bench --model "$m" --threads 2 --prompt-tokens 16 --gen-tokens 64 --bound-windows 0 \
        | awk '/^decode /{d=$2} /^bandwidth/{b=$2} END{print d, b}')
      theirs=$("$llama_bin/llama-bench" -m "$m" -t 2 -p 0 -n 64 -r 1 2>/dev/null | awk -F'|' '/tg64/{gsub(/ /, "", $8); split($8, a, "±"); print a[1]}')
    fi
    label=$phase; [ "$phase" = prefill ] && label="prefill $prompt"
    echo "$(basename "$m") $label round $r ($t UTC): ours $ours tok/s (read $gbs GB/s), llama.cpp $theirs, ratio $(awk -v a="$ours" -v b="$theirs" 'BEGIN{printf "%.2f", a/b}')"
  done
done
