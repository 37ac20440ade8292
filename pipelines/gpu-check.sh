#!/usr/bin/env bash
# One prepared check of the GPU path, for a GPU machine that has Python with torch and
# transformers but no Rust, no network and no project venv. Only the git working tree and the
# ignored folder .device-bin/ (our release binaries, stripped and xz-compressed) travel there.
#
#   bash pipelines/gpu-check.sh --pack         # here: pack target/release into .device-bin/
#   bash pipelines/gpu-check.sh [--out DIR]    # there: unpack, run every check on cuda
#   bash pipelines/gpu-check.sh --rehearse     # here or in CI: the same checks on the CPU,
#                                              # tiny shapes, no speed tables (~2 min)
#
# Checks (pipelines/gpu_check.py): golden logits against transformers for the tiny Qwen2,
# Qwen3 and Llama-3 fixtures in f32 and bf16; two iterations of `spice iterate` on the tiny
# Llama-3 run with every model stage's manifest recording the device; that run's first update
# again as rank 0 of a data-parallel world of 1 (NCCL on cuda), equal to the plain one; the update step and
# generation tokens/s on a random model of Qwen3-0.6B's shape against transformers.
#
# Output (--out, default $OUT if set, else data/gpu-check), at most 8 files:
# results.jsonl, table.md, doctor.json, bench.jsonl, iterate.log, gpu-check.log.
# Exits non-zero when a check failed. Scratch (models, the run) goes to a temp folder.
#
# Options: --bin-dir DIR (binaries to use instead of unpacking / target/release),
# --budget S (seconds the whole check may take, default 480; measurement rounds stop early
# to keep it), --keep (leave the scratch folder), --skip golden,iterate,measure,
# --device cpu (the GPU machine's path on the CPU: unpacked binaries, full shapes; for
# testing the script, with --skip measure).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# `spice` and the stage binaries it runs (BINARIES of pipelines/src/plan.rs, plus spice-eval
# for eval_every), and spice-lm for logits, bench and doctor.
BINS=(spice spice-lm spice-chunk spice-challenge spice-filter spice-rollout spice-score spice-update spice-eval)
PACK=.device-bin
PACK_LIMIT=$((56 * 1024 * 1024))  # the whole tree travels within 64 MiB
TREE_LIMIT=$((64 * 1024 * 1024))
OUT_FILES=(results.jsonl table.md doctor.json bench.jsonl iterate.log gpu-check.log)

mode=device
out="${OUT:-data/gpu-check}"
bin_dir=""
budget=480
keep=""
skip=""
device_opt=""
while [ $# -gt 0 ]; do
    case "$1" in
        --pack) mode=pack ;;
        --rehearse) mode=rehearse ;;
        --out) out="$2"; shift ;;
        --bin-dir) bin_dir="$2"; shift ;;
        --budget) budget="$2"; shift ;;
        --keep) keep=1 ;;
        --skip) skip="$2"; shift ;;
        --device) device_opt="$2"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

PY="${PYTHON:-python3}"  # the rehearsal switches to the project venv
t0=$SECONDS
say() { echo "[gpu-check $((SECONDS - t0)) s] $*"; }
die() { echo "gpu-check: $*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

sha256() {
    if command -v sha256sum >/dev/null; then
        sha256sum "$1" | cut -d' ' -f1
    else
        "$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
    fi
}

# Decompress one .xz: xz when the machine has it, else Python's lzma (the GPU machine may lack
# xz). GPU_CHECK_UNXZ=python forces the fallback, which the rehearsal uses to test it.
unxz_to() {
    if [ "${GPU_CHECK_UNXZ:-}" != python ] && command -v xz >/dev/null; then
        xz -dc "$1" > "$2"
    else
        "$PY" -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)' "$1" "$2"
    fi
    chmod +x "$2"
}

# Strip a copy of $1 and compress it to $2.xz; prints "raw stripped xz sha256-of-stripped".
pack_one() {
    local src="$1" dst="$2" tmp
    tmp="$(mktemp)"
    strip --strip-all -o "$tmp" "$src"
    xz -T0 -6 -c "$tmp" > "$dst.xz"
    echo "$(stat -c %s "$src") $(stat -c %s "$tmp") $(stat -c %s "$dst.xz") $(sha256 "$tmp")"
    rm -f "$tmp"
}

# Bytes of what travels besides .device-bin: tracked and untracked-but-not-ignored files.
tree_bytes() {
    git ls-files -z --cached --others --exclude-standard \
        | (du --files0-from=- -cb 2>/dev/null || true) | tail -1 | cut -f1
}

pack() {
    local src="${bin_dir:-target/release}" b line total=0 tree
    for b in "${BINS[@]}"; do
        [ -x "$src/$b" ] || die "$src/$b is missing: build with \`cargo build --release --workspace --bins\`"
    done
    command -v xz >/dev/null || die "xz is needed to pack"
    rm -rf "$PACK.new"
    mkdir -p "$PACK.new"
    {
        echo "# spice-rs binaries for pipelines/gpu-check.sh, stripped and xz-compressed"
        echo "# packed $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m) from $(git describe --always --dirty 2>/dev/null || echo unknown)"
        echo "# name raw_bytes stripped_bytes xz_bytes sha256_of_stripped"
    } > "$PACK.new/MANIFEST"
    for b in "${BINS[@]}"; do
        line="$(pack_one "$src/$b" "$PACK.new/$b")"
        echo "$b $line" >> "$PACK.new/MANIFEST"
        read -r raw stripped xzb _ <<< "$line"
        total=$((total + xzb))
        printf '  %-16s %10s -> stripped %10s -> xz %10s\n' "$b" "$(mib "$raw")" "$(mib "$stripped")" "$(mib "$xzb")"
    done
    rm -rf "$PACK"
    mv "$PACK.new" "$PACK"
    tree="$(tree_bytes)"
    echo "packed: $PACK/ holds $(mib "$total") (limit $(mib $PACK_LIMIT)); the rest of the tree $(mib "$tree");" \
         "together $(mib $((total + tree))) of $(mib $TREE_LIMIT)"
    [ "$total" -le "$PACK_LIMIT" ] || die "$PACK is over $(mib $PACK_LIMIT)"
    [ $((total + tree)) -le "$TREE_LIMIT" ] || die "the tree with $PACK is over $(mib $TREE_LIMIT)"
    echo "on the GPU machine: bash pipelines/gpu-check.sh   (carry: $PACK)"
}

# Unpack every binary of $PACK into $1 and check each against MANIFEST's sha256.
unpack() {
    local dest="$1" n=0 name raw stripped xzb sum got t=$SECONDS
    [ -f "$PACK/MANIFEST" ] || die "no $PACK/MANIFEST: run \`bash pipelines/gpu-check.sh --pack\` on the build machine and carry $PACK"
    mkdir -p "$dest"
    while read -r name raw stripped xzb sum; do
        case "$name" in ''|'#'*) continue ;; esac
        [ -f "$PACK/$name.xz" ] || die "$PACK/$name.xz is missing"
        unxz_to "$PACK/$name.xz" "$dest/$name"
        got="$(sha256 "$dest/$name")"
        [ "$got" = "$sum" ] || die "$name: sha256 $got after unpacking, MANIFEST says $sum"
        n=$((n + 1))
    done < "$PACK/MANIFEST"
    say "unpacked $n binaries into $dest, checksums match ($((SECONDS - t)) s)"
    packed_from="$(sed -n 's/^# packed //p' "$PACK/MANIFEST")"
    printf '{"check": "unpack", "ok": true, "binaries": %d, "seconds": %d, "decompressor": "%s", "detail": "%d binaries from %s (packed %s), checksums match"}\n' \
        "$n" "$((SECONDS - t))" "$( [ "${GPU_CHECK_UNXZ:-}" != python ] && command -v xz >/dev/null && echo xz || echo python-lzma)" \
        "$n" "$PACK" "$packed_from" >> "$out/results.jsonl"
}

# The rehearsal's unpacking test when nothing is packed: pack the smallest binary alone and
# unpack it with Python's lzma, as a GPU machine without xz would.
unpack_rehearsal() {
    local work="$1" src="$2" small saved_pack="$PACK"
    small="$(cd "$src" && ls -S "${BINS[@]}" | tail -1)"
    mkdir -p "$work/pack"
    PACK="$work/pack"
    { echo "# packed $(date -u +%Y-%m-%dT%H:%MZ) by the rehearsal: $small alone"
      echo "$small $(pack_one "$src/$small" "$PACK/$small")"; } > "$PACK/MANIFEST"
    GPU_CHECK_UNXZ=python unpack "$work/unpacked"
    PACK="$saved_pack"
}

checks() {
    local bin device py_args=()
    work="$(mktemp -d "${TMPDIR:-/tmp}/spice-gpu-check.XXXXXX")"  # global: the EXIT trap reads it
    [ -n "$keep" ] && say "scratch folder kept: $work" || trap 'rm -rf "$work"' EXIT
    if [ "$mode" = rehearse ]; then
        # The project venv (its torch is the libtorch our binaries were built against).
        source pipelines/env.sh
        PY="$SPICE_PYTHON"
        device=cpu
        bin="${bin_dir:-target/release}"
        if [ -f "$PACK/MANIFEST" ]; then
            GPU_CHECK_UNXZ=python unpack "$work/unpacked"
            local b stale=()
            for b in "${BINS[@]}"; do
                if [ "$bin/$b" -nt "$PACK/MANIFEST" ]; then stale+=("$b"); fi
            done
            [ ${#stale[@]} -eq 0 ] || say "note: $PACK is older than ${stale[*]} in $bin: run --pack before spending device time"
        else
            unpack_rehearsal "$work" "$bin"
        fi
        py_args+=(--rehearse)
    else
        PY="${PYTHON:-python3}"
        device="${device_opt:-cuda}"
        if [ -n "$bin_dir" ]; then
            bin="$bin_dir"
        else
            bin="$work/bin"
            unpack "$bin"
        fi
    fi
    bin="$(cd "$bin" && pwd)"
    for b in "${BINS[@]}"; do [ -x "$bin/$b" ] || die "$bin/$b is missing"; done
    local build_info
    build_info="$( [ -f "$PACK/MANIFEST" ] && [ "$mode" != rehearse ] && sed -n 's/^# packed //p' "$PACK/MANIFEST" || echo "$bin")"

    # The binaries' rpath points at the build machine's venv; here libtorch is this Python's.
    local torch_lib
    torch_lib="$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" \
        || die "$PY cannot import torch"
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # Local folders only: no time lost asking a hub that the GPU machine cannot reach.
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    say "python $PY, libtorch from $torch_lib, binaries in $bin, device $device"
    if command -v ldd >/dev/null && ldd "$bin/spice-lm" | grep -q 'not found'; then
        ldd "$bin/spice-lm" | grep 'not found' >&2
        printf '{"check": "libraries", "ok": false, "detail": "spice-lm has unresolved libraries (see gpu-check.log)"}\n' >> "$out/results.jsonl"
        die "spice-lm has unresolved shared libraries"
    fi

    if "$bin/spice" doctor --format json > "$out/doctor.json" 2> "$work/doctor.err"; then
        say "doctor: $out/doctor.json"
    else
        say "spice doctor failed (noted, not a failure): $(tail -3 "$work/doctor.err")"
        "$PY" -c 'import json, sys; json.dump({"error": sys.argv[1]}, open(sys.argv[2], "w"))' \
            "$(tail -3 "$work/doctor.err")" "$out/doctor.json"
    fi

    # Measurements stop early to end within the budget; 30 s are kept for the report.
    "$PY" pipelines/gpu_check.py --bin-dir "$bin" --device "$device" --out "$out" --work "$work" \
        --started "$(( $(date +%s) - (SECONDS - t0) ))" --build-info "$build_info" \
        --deadline "$(( $(date +%s) + budget - (SECONDS - t0) - 30 ))" \
        ${skip:+--skip "$skip"} "${py_args[@]}"
}

if [ "$mode" = pack ]; then
    pack
    exit 0
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
for f in "${OUT_FILES[@]}"; do rm -f "$out/$f"; done
# Everything printed is kept in gpu-check.log as well; the checks' status is the script's.
set +e
( set -e; checks ) 2>&1 | tee "$out/gpu-check.log"
status=${PIPESTATUS[0]}
set -e
echo "gpu-check: $mode finished in $((SECONDS - t0)) s with status $status; results in $out"
exit "$status"
