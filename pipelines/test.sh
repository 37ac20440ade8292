#!/usr/bin/env bash
# `just test`: the whole test suite in the release profile (tch and arrow compile once, shared
# with the binaries), then where the time went. Extra arguments go to `cargo test`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SPICE_ROOT"

# Style first: a formatting or clippy error fails the suite before any test runs.
t0=$SECONDS
for tool in rustfmt clippy; do
    if ! cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$tool"
    fi
done
cargo fmt --all --check
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
t_lint=$((SECONDS - t0))

t0=$SECONDS
cargo test --release --workspace --no-run --quiet
t_build=$((SECONDS - t0))

t1=$SECONDS
log=$(mktemp)
status=0
# --show-output: tests that measure (peer agreement, logit differences) or skip for a stated
# reason print it, and that must be visible in a passing run too.
cargo test --release --workspace "$@" -- --show-output 2>&1 | tee "$log" || status=$?
t_run=$((SECONDS - t1))

echo
echo "== where the time went =="
echo "fmt, clippy: ${t_lint} s"
echo "build tests: ${t_build} s"
echo "run tests:   ${t_run} s"
# Each test binary prints `Running <path>` then `finished in Ns`: list the slowest.
echo "slowest test binaries:"
awk '/Running /{name=$2" "$3} /test result:/{for(i=1;i<=NF;i++) if($i=="in"){print $(i+1), name}}' "$log" \
    | sort -rn | awk 'NR <= 10 { print "  " $0 }'  # reads all its input: no SIGPIPE under pipefail
rm -f "$log"
exit $status
