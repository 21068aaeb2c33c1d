#!/usr/bin/env bash
# Decode A/B of two qwen3 builds on each model, alternating which goes first, llama-bench on GGUF files after each
# model's rounds (the README's session-12 Zen 3 table):
#
#   tools/bench/decode_ab.sh BEFORE_QWEN3 AFTER_QWEN3 ROUNDS PROMPT_TOKENS MODEL...
#   e.g. tools/bench/decode_ab.sh /work/bin/old/qwen3 /work/bin/new/qwen3 2 16 /work/models/qwen3-1.7b-q8_0.gguf /work/models/qwen3-1.7b-mlx-8bit
#
# Per pass: qwen3 bench --threads 2 --prompt-tokens PROMPT_TOKENS --gen-tokens 64 (its decode, layout A/B and paired
# lines); then llama-bench -t 2 -p PROMPT_TOKENS|0 -n 64 -r 2. LLAMA_BIN overrides the llama.cpp bin folder (default
# /work/llama/llama.cpp/build/bin). Run it on a quiet machine.
set -euo pipefail
before=${1:?qwen3 before}; after=${2:?qwen3 after}; rounds=${3:?rounds}; prompt=${4:?prompt tokens}; shift 4
llama_bin=${LLAMA_BIN:-/work/llama/llama.cpp/build/bin}
stamp() { echo "== $* ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"; }
for m in "$@"; do
  for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) = 1 ]; then order=("$before" "$after"); else order=("$after" "$before"); fi
    for q in "${order[@]}"; do
      stamp "$(basename "$m") $q round $r"
      "$q" bench --model "$m" --threads 2 --prompt-tokens "$prompt" --gen-tokens 64 | grep -E '^(prefill|decode|layout|peak|bandwidth|decode/bound|paired)'
    done
  done
  case $m in
    *.gguf) stamp "llama-bench $(basename "$m")"
            p=$prompt; [ "$p" -le 16 ] && p=0
            "$llama_bin/llama-bench" -m "$m" -t 2 -p "$p" -n 64 -r 2 2>&1 | grep -E '^\|' ;;
  esac
done
stamp done
