# spice-rs — recipes stay thin: they forward their arguments to the binaries' own flags,
# so `--help` of each binary documents every option once.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

# List the recipes.
default:
    @just --list

# Prepare everything on first use (idempotent): Python venv with torch 2.11 (libtorch),
# the release build, the default model and the default corpus.
setup:
    @bash pipelines/setup.sh

# Run SPICE iterations (default: one iteration of pipelines/cpu.toml). `just iterate --help`.
iterate *args: setup
    @target/release/spice iterate "$@"

# Submit the stages of a run as Slurm jobs (`[slurm]` section of the config for resources);
# again submits only what is neither done nor queued. `just slurm-iterate --help`.
slurm-iterate *args: setup
    @target/release/spice slurm iterate "$@"

# Per iteration and stage: done, queued, running, failed (with its log) or cancelled.
slurm-status *args:
    @target/release/spice slurm status "$@"

# Cross-play of a run: Challengers and Reasoners of its iterations against each other on
# held-out documents, e.g. `just crossplay --run data/runs/default --policies 0,5,10`.
crossplay *args: setup
    @target/release/spice crossplay "$@"

# The same command resumes where it stopped; `just learn data/runs/other` for another folder.
# Does self-play teach anything? pipelines/learn.toml (20 iterations), cross-play, report.
learn run="data/runs/learn": setup
    target/release/spice iterate --config pipelines/learn.toml --run {{run}}
    target/release/spice crossplay --run {{run}}
    target/release/spice report --run {{run}}

# Evaluate a model or checkpoint on benchmark files, e.g.
# `just eval --model data/models/smollm2-135m-instruct --bench math500.jsonl --out data/eval/x`.
eval *args: setup
    @target/release/spice-eval "$@"

# Run every test (builds and installs what the tests need first).
test *args: setup
    @bash pipelines/test.sh "$@"

# Benchmarks: generation tokens/s and update-step time/memory against transformers.
bench *args: setup
    @bash pipelines/bench.sh "$@"

# Any stage or tool binary, e.g. `just run spice-lm generate --chat --prompt "Hi"`.
run bin *args: setup
    @target/release/"$@"

# One example of an iteration: the document, the Challenger's task and the Reasoner's answers
# with their verdicts, e.g. `just show --run data/runs/smoke --iter 0 [--task ID]`.
show *args: setup
    @target/release/spice show "$@"

# Per-iteration report of a run: a table (`--format table|csv|json`), report.csv, report.json
# and plots in <run>/report/, e.g. `just report --run data/runs/smoke`.
report *args: setup
    @target/release/spice report "$@"

# What this machine and build give the stages: libtorch, CUDA backend, driver and GPUs, cuDNN,
# NCCL, CPU ISA and matmul path, threads, and what `device = "auto"` picks and why.
doctor *args: setup
    @target/release/spice doctor "$@"

# The GPU check (pipelines/gpu-check.sh): `--pack` here packs the release binaries into
# .device-bin/ for a GPU machine, `--rehearse` runs the same checks on this CPU.
gpu-check *args: setup
    @bash pipelines/gpu-check.sh "$@"
