#!/usr/bin/env bash
# Float matrices in 8-row groups against rows, same window (the README's session-10 Zen 3 block; run it on a Zen 4/5
# session to decide QWEN3_FLOAT_LAYOUT's default there, where `auto` keeps rows until measured):
# the kernels alone (one 1.7B layer from DRAM, 1..64 tokens), then whole-model prefill/decode alternating, then serving.
#
#   tools/bench/float_layout_ab.sh MODEL_DIR [THREADS] [GGUF]
#   e.g. tools/bench/float_layout_ab.sh /work/models/qwen3-1.7b 2 /work/models/qwen3-1.7b-bf16.gguf
#
# With GGUF, llama-bench and llama-batched-bench run on it in the same window (LLAMA_BIN: the llama.cpp bin folder,
# default /work/llama/llama.cpp/build/bin). QWEN3 overrides the qwen3 command (default: dotnet run of the CLI project).
# Run it on a quiet machine; on AVX-512 machines the rows' decode kernel is the one-row kernel (QWEN3_DECODE_KERNEL).
set -euo pipefail
model=${1:?model directory}; threads=${2:-2}; gguf=${3:-}
llama_bin=${LLAMA_BIN:-/work/llama/llama.cpp/build/bin}
root=$(cd "$(dirname "$0")/../.." && pwd)
qwen3=${QWEN3:-dotnet run -c Release --project "$root/src/Qwen3Sharp.Cli" --}
bench="$root/bench/Qwen3Sharp.Bench/bin/Release/net10.0/Qwen3Sharp.Bench.dll"
stamp() { echo; echo "== $* ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"; }
[ -f "$bench" ] || dotnet build -c Release "$root/bench/Qwen3Sharp.Bench" >/dev/null
grep -m1 'model name' /proc/cpuinfo; { grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo || echo 'no avx512 flags'; } | sort -u | tr '\n' ' '; echo
stamp "kernels: rows against groups, one layer (quick $threads groups; peak)"
dotnet "$bench" quick "$threads" peak | tail -1
dotnet "$bench" quick "$threads" groups | tail -11
for round in 1 2; do
  for layout in x8 rows; do
    stamp "qwen3 bench $layout, round $round"
    QWEN3_FLOAT_LAYOUT=$layout $qwen3 bench --model "$model" --threads "$threads" --prompt-tokens 512 --gen-tokens 64 |
      grep -E "^(kernels|load|prefill|decode|layout|bandwidth|decode/bound)"
  done
done
for layout in x8 rows; do
  stamp "qwen3 bench-serve $layout"
  QWEN3_FLOAT_LAYOUT=$layout $qwen3 bench-serve --model "$model" --threads "$threads" --concurrency 1,4,8,16 --prompt-tokens 64 --gen-tokens 24 |
    grep -E '^\| [0-9]'
done
if [ -n "$gguf" ]; then
  stamp "llama-bench"; "$llama_bin/llama-bench" -m "$gguf" -t "$threads" -p 512 -n 64 -r 2 2>&1 | grep -E '^\|'
  stamp "llama-batched-bench"
  "$llama_bin/llama-batched-bench" -m "$gguf" -t "$threads" -c 4096 -b 2048 -ub 512 -npp 64 -ntg 24 -npl 1,4,8,16 2>&1 | grep -E '^\|'
fi
stamp done
