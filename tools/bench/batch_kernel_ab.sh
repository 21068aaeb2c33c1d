#!/usr/bin/env bash
# Whole-engine A/B of the BF16 batched-decode kernels (QWEN3_BATCH_KERNEL=stream|hybrid|tiled): `qwen3 bench-serve` runs
# alternating between the three, ROUNDS times each, same binary, same threads; then the kernel-level figures in one process
# (GFLOP/s against the FMA peak measured alongside) and the step breakdown (products vs the rest).
#
#   tools/bench/batch_kernel_ab.sh MODEL_DIR [LEVELS] [THREADS] [ROUNDS] [PROMPT] [GEN]
#   e.g. tools/bench/batch_kernel_ab.sh /work/models/qwen3-1.7b 1,4,8,16 2 2 64 24
#
# Needs a Release build of the solution (the CLI and the bench). Quiet machine only: under load the figures are noise.
set -euo pipefail
model=${1:?model directory}; levels=${2:-1,4,8,16}; threads=${3:-2}; rounds=${4:-2}; npp=${5:-64}; ntg=${6:-24}
root=$(cd "$(dirname "$0")/../.." && pwd)
qwen3=${QWEN3:-$root/src/Qwen3Sharp.Cli/bin/Release/net10.0/qwen3}
bench="dotnet $root/bench/Qwen3Sharp.Bench/bin/Release/net10.0/Qwen3Sharp.Bench.dll"
for round in $(seq "$rounds"); do
  for kernel in stream hybrid tiled; do
    echo "== bench-serve round $round, QWEN3_BATCH_KERNEL=$kernel ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
    QWEN3_BATCH_KERNEL=$kernel $qwen3 bench-serve --model "$model" --concurrency "$levels" --prompt-tokens "$npp" \
      --gen-tokens "$ntg" --threads "$threads" | grep -E '^\|'
  done
done
echo "== kernels ($(date -u +%H:%M:%S) UTC)"
$bench quick "$threads" batchflops
$bench quick 1 batchhot
echo "== step ($(date -u +%H:%M:%S) UTC)"
$bench quick "$threads" "step=$model"
