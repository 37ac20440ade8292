#!/usr/bin/env bash
# `just bench`: generation tokens/s and the update step, ours against transformers on the same
# model in the same run (interleaved; best and median of several rounds). Extra arguments go
# to stages/lib/lm/benches/compare.py (--rounds, --dtypes, --batches, --what generate|update|all).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SPICE_ROOT"

# The baseline needs transformers; only the benchmark installs it.
if ! "$SPICE_PYTHON" -c 'import transformers' 2>/dev/null; then
    echo "==> installing transformers into the venv (benchmark baseline only)" >&2
    "$SPICE_PYTHON" -m pip install --quiet "transformers==5.*"
fi
# --what scaling times the update stage (stages/update/examples/bench.rs) at 1 and N ranks.
case " $* " in
    *" scaling "*|*"--what=scaling"*)
        cargo build --release --workspace --bins --examples --quiet ;;
esac
exec "$SPICE_PYTHON" stages/lib/lm/benches/compare.py \
    --model data/models/smollm2-135m-instruct --spice-lm target/release/spice-lm \
    --python "$SPICE_PYTHON" "$@"
