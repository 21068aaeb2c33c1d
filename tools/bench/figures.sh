#!/usr/bin/env bash
# The README's performance figures in one run, each beside llama.cpp on the same file, one after the other on the same
# threads, with the time and load average before each (run it on a quiet machine; the figures say which one).
#
#   tools/bench/figures.sh [MODELS_DIR] [THREADS]
#
# MODELS_DIR holds qwen3-1.7b/ (`qwen3 synth --preset qwen3-1.7b --out MODELS_DIR/qwen3-1.7b`) and the GGUFs that
# ../shared/tools/hf_to_gguf.py makes from it: qwen3-1.7b-{bf16,q8_0,q4_0}.gguf; optional: qwen3-1.7b-q4_k_m.gguf
# (llama-quantize), qwen3-1.7b-mlx-8bit/ and -mlx-4bit/ (tools/fixtures/mlx/mlx_convert.py). LLAMA_BIN: the native
# llama.cpp build of ../shared/tools/llama_bench.sh. QWEN3: the qwen3 command (default: dotnet run of the CLI project).
set -uo pipefail
models=${1:-/work/models}; t=${2:-2}
llama=${LLAMA_BIN:-/work/llama/llama.cpp/build/bin}
root=$(cd "$(dirname "$0")/../.." && pwd)
qwen3=${QWEN3:-dotnet run -c Release --project "$root/src/Qwen3Sharp.Cli" --}
stamp() { echo; echo "== $* ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"; }
grep -m1 'model name' /proc/cpuinfo; grep -o -w 'avx512f\|avx512_bf16\|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '; echo

# Decode is measured from an empty context on both sides (qwen3 bench --depth 0, llama-bench -d 0), and once more at a
# depth of 2,048 positions (attention over the cache: qwen3 bench --depth, llama-bench -d).
qb() { stamp "qwen3 bench $*"; $qwen3 bench --threads "$t" --prompt-tokens 512 --gen-tokens 64 "$@"; }
lb() { [[ -x $llama/llama-bench && -f $1 ]] || return 0; stamp "llama-bench $(basename "$1") ${2:+-d $2}"; "$llama/llama-bench" -m "$1" -t "$t" -p 512 -n 64 -d "${2:-0}" -r 1 2>&1 | grep -E '^\|'; }
depth() { stamp "qwen3 bench $1 --depth 2048"; $qwen3 bench --threads "$t" --prompt-tokens 16 --gen-tokens 32 --depth 2048 --model "$1" | grep -E '^(decode|kv cache)';
  [[ -x $llama/llama-bench && -f $2 ]] || return 0; stamp "llama-bench $(basename "$2") -d 2048"; "$llama/llama-bench" -m "$2" -t "$t" -p 0 -n 32 -d 2048 -r 1 2>&1 | grep -E '^\|'; }

qb --model "$models/qwen3-1.7b"
lb "$models/qwen3-1.7b-bf16.gguf"
qb --model "$models/qwen3-1.7b-q8_0.gguf"
qb --model "$models/qwen3-1.7b" --quantize q8_0
lb "$models/qwen3-1.7b-q8_0.gguf"
qb --model "$models/qwen3-1.7b-q4_0.gguf"
lb "$models/qwen3-1.7b-q4_0.gguf"
if [[ -f $models/qwen3-1.7b-q4_k_m.gguf ]]; then qb --model "$models/qwen3-1.7b-q4_k_m.gguf"; lb "$models/qwen3-1.7b-q4_k_m.gguf"; fi
for m in mlx-8bit mlx-4bit; do [[ -d $models/qwen3-1.7b-$m ]] && qb --model "$models/qwen3-1.7b-$m"; done
depth "$models/qwen3-1.7b-q8_0.gguf" "$models/qwen3-1.7b-q8_0.gguf"

stamp "serve: concurrent streams, then llama-batched-bench"
LLAMA_BIN=$llama QWEN3="$qwen3" "$root/tools/bench/serve_vs_llama.sh" "$models/qwen3-1.7b" "$models/qwen3-1.7b-bf16.gguf" 1,4,8,16 "$t" 64 24
