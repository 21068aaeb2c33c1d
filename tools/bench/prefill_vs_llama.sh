#!/usr/bin/env bash
# Same-run prefill comparison on an AVX512_BF16 machine: llama.cpp's llama-bench, then `qwen3 bench` (which alternates
# the managed float32 and the JIT bf16 prefill kernels in one process, best of two each, wall and per CPU-second),
# then llama-bench again, with the load average before each. Issue 15.
#
#   tools/bench/prefill_vs_llama.sh MODEL_DIR GGUF [THREADS] [PROMPT]
#   e.g. tools/bench/prefill_vs_llama.sh /work/models/qwen3-1.7b /work/models/qwen3-1.7b-bf16.gguf 2 512
#
# LLAMA_BIN overrides the llama.cpp bin folder (default /work/llama/llama.cpp/build/bin); QWEN3 the qwen3 command.
set -euo pipefail
model=${1:?model directory}; gguf=${2:?gguf file}; threads=${3:-2}; prompt=${4:-512}
llama_bin=${LLAMA_BIN:-/work/llama/llama.cpp/build/bin}
root=$(cd "$(dirname "$0")/../.." && pwd)
qwen3=${QWEN3:-dotnet run -c Release --project "$root/src/Qwen3Sharp.Cli" --}
llama() {
  echo "== llama-bench ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$llama_bin/llama-bench" -m "$gguf" -t "$threads" -p "$prompt" -n 0 -r 2 2>&1 | grep -E "^\| (model|.*pp$prompt)" || true
}
llama
echo "== qwen3 bench ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
$qwen3 bench --model "$model" --prompt-tokens "$prompt" --gen-tokens 1 --threads "$threads" | grep -E "kernels|prefill|CPU-second"
llama
echo "== done ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
