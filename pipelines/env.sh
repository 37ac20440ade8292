# Environment for building and testing against libtorch. Sourced by the other scripts.
#
# libtorch comes from the torch wheel in the project venv (LIBTORCH_USE_PYTORCH), unless the
# user points LIBTORCH at an existing libtorch. tch 0.24 accepts exactly torch 2.11.

SPICE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SPICE_ROOT
export SPICE_VENV="${SPICE_VENV:-$SPICE_ROOT/.venv}"
export SPICE_PYTHON="$SPICE_VENV/bin/python"
if [ -n "${LIBTORCH:-}" ]; then
    unset LIBTORCH_USE_PYTORCH
else
    export VIRTUAL_ENV="$SPICE_VENV"
    export LIBTORCH_USE_PYTORCH=1
    export PATH="$SPICE_VENV/bin:$PATH"
fi
