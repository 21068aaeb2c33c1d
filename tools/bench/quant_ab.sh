#!/usr/bin/env bash
# Quantized decode/prefill A/B of two qwen3 builds beside llama.cpp, same run (the README's session-8 Zen 3 table):
# per format, in-process one-group/two-groups A/B, then BEFORE, AFTER, llama-bench, BEFORE, AFTER.
#
#   tools/bench/quant_ab.sh BEFORE_QWEN3 AFTER_QWEN3 MODELS_DIR [THREADS] [FORMATS]
#   e.g. tools/bench/quant_ab.sh /work/bin/old/qwen3 /work/bin/new/qwen3 /work/models 2 "q8_0 q4_0 q4_k_m"
#
# MODELS_DIR holds qwen3-1.7b-FORMAT.gguf (qwen3 synth + ../shared/tools/hf_to_gguf.py / llama-quantize). LLAMA_BIN
# overrides the llama.cpp bin folder (default /work/llama/llama.cpp/build/bin). Run it on a quiet machine.
set -euo pipefail
before=${1:?qwen3 before}; after=${2:?qwen3 after}; models=${3:?models dir}; threads=${4:-2}; formats=${5:-q8_0 q4_0 q4_k_m}
llama_bin=${LLAMA_BIN:-/work/llama/llama.cpp/build/bin}
root=$(cd "$(dirname "$0")/../.." && pwd)
bench="$root/bench/Qwen3Sharp.Bench/bin/Release/net10.0/Qwen3Sharp.Bench.dll"
stamp() { echo; echo "== $* ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"; }
[ -f "$bench" ] || dotnet build -c Release "$root/bench/Qwen3Sharp.Bench" >/dev/null
for f in $formats; do
  m="$models/qwen3-1.7b-$f.gguf"
  stamp "in-process one group / two groups per pass, $f"; dotnet "$bench" quick "$threads" "x8pair=$m" 2>&1 | tail -7
  for q in "$before" "$after"; do stamp "qwen3 bench $f ($q)"; "$q" bench --model "$m" --threads "$threads" --prompt-tokens 128 --gen-tokens 64 | grep -E "^(load|prefill|decode|bandwidth|decode/bound|layout|peak)"; done
  stamp "llama-bench $f -p 128 -n 64"; "$llama_bin/llama-bench" -m "$m" -t "$threads" -p 128 -n 64 -r 2 2>&1 | grep -E '^\|'
  for q in "$before" "$after"; do stamp "qwen3 bench $f ($q), second"; "$q" bench --model "$m" --threads "$threads" --prompt-tokens 128 --gen-tokens 64 | grep -E "^(prefill|decode|bandwidth|decode/bound|layout)"; done
done
stamp done
