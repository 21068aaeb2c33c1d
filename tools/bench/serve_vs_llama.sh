#!/usr/bin/env bash
# Same-run comparison: `qwen3 bench-serve` (through the OpenAI server, concurrent streams) and llama.cpp's
# llama-batched-bench (its batched decode, no HTTP) on the same model, one after the other, on the same threads.
#
#   tools/bench/serve_vs_llama.sh MODEL_DIR GGUF [LEVELS] [THREADS] [PROMPT] [GEN]
#   e.g. tools/bench/serve_vs_llama.sh /work/models/qwen3-1.7b /work/models/qwen3-1.7b-bf16.gguf 1,2,4,8,16,32 2 64 24
#
# LLAMA_BIN overrides the llama.cpp bin folder (default /work/llama/llama.cpp/build/bin, the native build of
# ../shared/tools/llama_bench.sh). QWEN3 overrides the qwen3 command (default: dotnet run of the CLI project).
set -euo pipefail
model=${1:?model directory}; gguf=${2:?gguf file}; levels=${3:-1,2,4,8,16,32}; threads=${4:-2}; npp=${5:-64}; ntg=${6:-24}
llama_bin=${LLAMA_BIN:-/work/llama/llama.cpp/build/bin}
root=$(cd "$(dirname "$0")/../.." && pwd)
qwen3=${QWEN3:-dotnet run -c Release --project "$root/src/Qwen3Sharp.Cli" --}
maxseq=$(tr ',' '\n' <<<"$levels" | sort -n | tail -1)
echo "== qwen3 bench-serve ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
$qwen3 bench-serve --model "$model" --concurrency "$levels" --prompt-tokens "$npp" --gen-tokens "$ntg" --threads "$threads"
echo
echo "== llama-batched-bench ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
# -npl: parallel sequences; -c must hold all of them: (npp + ntg) * max(npl)
"$llama_bin/llama-batched-bench" -m "$gguf" -t "$threads" -c $(( (npp + ntg) * maxseq + 64 )) -b 2048 -ub 512 \
    -npp "$npp" -ntg "$ntg" -npl "$levels" 2>&1 | grep -E '^\|' || true
