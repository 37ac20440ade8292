"""Interleave `spice-lm bench` and the transformers baseline, then print best/median tables.

    python stages/lib/lm/benches/compare.py --model data/models/smollm2-135m-instruct \
        --spice-lm target/release/spice-lm [--rounds 5] [--dtypes bf16,f32] [--what all] \
        [--device cpu|cuda]
    python stages/lib/lm/benches/compare.py --model ... --from-logs a.jsonl b.jsonl   # tables only

Each round runs ours then theirs for each (measurement, dtype), one run each, so a noisy
neighbour hurts both alike. Raw JSON lines go to --log (default bench-results.jsonl).
On a GPU the update table's memory is device memory in use after the step (`gpu_used_bytes`,
CUDA context included, on both sides) rather than the process's peak RSS.
Uses only the standard library (plus torch/transformers inside transformers_bench.py).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, log):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    with open(log, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return rows


def table(rows, dtypes, batches):
    """Markdown tables of best and median per cell, with the number of runs behind each."""

    def cell(impl, bench, dt, key, **match):
        v = [r[key] for r in rows if r["impl"] == impl and r["bench"] == bench and r["dtype"] == dt
             and all(r.get(k) == x for k, x in match.items())]
        if not v:
            return None
        return (max(v) if key == "tokens_per_s" else min(v)), statistics.median(v), len(v)

    out = []
    # Ours with a shared prefix is a variant of ours, measured in the same rounds.
    for r in rows:
        if r.get("shared_prefix") and r["impl"] == "spice-lm":
            r["impl"] = "spice-lm shared-prefix"
    gen = [r for r in rows if r["bench"] == "generate"]
    if gen:
        out.append("| dtype | batch | spice-lm tok/s best / median (runs) | transformers tok/s best / median (runs) | ratio best / median |")
        out.append("| --- | --- | --- | --- | --- |")
        for dt in dtypes:
            for b in batches:
                o = cell("spice-lm", "generate", dt, "tokens_per_s", batch=b)
                t = cell("transformers", "generate", dt, "tokens_per_s", batch=b)
                if o and t:
                    out.append(f"| {dt} | {b} | {o[0]:.1f} / {o[1]:.1f} ({o[2]}) | {t[0]:.1f} / {t[1]:.1f} ({t[2]}) "
                               f"| {o[0] / t[0]:.2f}× / {o[1] / t[1]:.2f}× |")
    spice = [r for r in rows if r["bench"] == "spice"]
    if spice:
        out.append("")
        out.append("| workload | dtype | spice-lm tok/s best / median (runs) | transformers tok/s best / median (runs) | ratio best / median | rows stopped early (ours / theirs) | prompt tokens prefilled (ours) | peak GB (ours / theirs) |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for w in sorted({r["workload"] for r in spice}):
            for dt in dtypes:
                o = cell("spice-lm", "spice", dt, "tokens_per_s", workload=w)
                t = cell("transformers", "spice", dt, "tokens_per_s", workload=w)
                if not (o and t):
                    continue
                def last(impl, key):
                    v = [r.get(key) for r in spice if r["impl"] == impl and r["workload"] == w and r["dtype"] == dt]
                    return v[-1] if v else None
                peak = lambda impl: max((r.get("peak_rss_bytes") or 0 for r in spice
                                         if r["impl"] == impl and r["workload"] == w and r["dtype"] == dt), default=0) / 1e9
                out.append(f"| {w} | {dt} | {o[0]:.1f} / {o[1]:.1f} ({o[2]}) | {t[0]:.1f} / {t[1]:.1f} ({t[2]}) "
                           f"| {o[0] / t[0]:.2f}× / {o[1] / t[1]:.2f}× "
                           f"| {last('spice-lm', 'stopped_rows')}/{last('spice-lm', 'rows')} / {last('transformers', 'stopped_rows')}/{last('transformers', 'rows')} "
                           f"| {last('spice-lm', 'prefill_tokens')} of {last('spice-lm', 'prompt_tokens')} "
                           f"| {peak('spice-lm'):.2f} / {peak('transformers'):.2f} |")
    upd = [r for r in rows if r["bench"] == "update"]
    if upd:
        # GPU rows carry device memory; the process's RSS says little there.
        mem_key = "gpu_used_bytes" if any(r.get("gpu_used_bytes") for r in upd) else "peak_rss_bytes"
        mem = "GPU used GB" if mem_key == "gpu_used_bytes" else "peak GB"
        out.append("")
        shape = upd[0].get("mix") or f"{upd[0]['rows']} x {upd[0]['seq']} tokens ({upd[0]['completion']} completion)"
        out.append(f"Update step, {shape}; model GFLOP/s = 6 x parameters x tokens forwarded / s (a "
                   "shared prompt counts once), against a 1024^3 GEMM in the compute dtype measured in "
                   "the same process.")
        out.append("")
        out.append(f"| dtype | ours | ours s best / median (runs) | {mem} | tokens forwarded | ours model GFLOP/s (share of GEMM peak) | transformers s best / median (runs) | {mem} | speed-up best / median |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for dt in dtypes:
            t = cell("transformers", "update", dt, "seconds")
            for impl in ("spice-lm", "spice-lm shared-prefix"):
                o = cell(impl, "update", dt, "seconds")
                peak = lambda impl: max((r.get(mem_key) or 0 for r in upd
                                         if r["impl"] == impl and r["dtype"] == dt), default=0) / 1e9
                best = min((r for r in upd if r["impl"] == impl and r["dtype"] == dt),
                           key=lambda r: r["seconds"], default={})
                flops = (f"{best['model_flops'] / 1e9:.1f} ({best['peak_fraction']:.0%} of "
                         f"{best['matmul_peak_flops'] / 1e9:.0f}, {best.get('compute')})"
                         if "model_flops" in best else "")
                fwd = f"{best.get('forwarded_tokens', best.get('tokens'))} of {best.get('tokens')}"
                if o and t:
                    out.append(f"| {dt} | {impl} | {o[0]:.1f} / {o[1]:.1f} ({o[2]}) | {peak(impl):.2f} | {fwd} | {flops} "
                               f"| {t[0]:.1f} / {t[1]:.1f} ({t[2]}) | {peak('transformers'):.2f} "
                               f"| {t[0] / o[0]:.2f}× / {t[1] / o[1]:.2f}× |")
    return "\n".join(out)


def scaling_table(rows):
    """The data-parallel update at 1 and N processes (at each ZeRO stage) on one global batch."""
    out = []
    by = {}
    for r in rows:
        key = (r["processes"], r.get("zero_stage", 0) if r["processes"] > 1 else 0)
        by.setdefault(key, []).append(r)
    if not by:
        return ""
    r0 = rows[0]
    out.append(f"Data-parallel update: {r0['sequences']} sequences of {r0['prompt']}+{r0['completion']} tokens, "
               f"micro-batch {r0['micro_batch']}, {r0['dtype']}, one optimizer step; ranks share the cores.")
    out.append("")
    out.append("| processes | ZeRO stage | train s best / median (runs) | stage s best / median | model GFLOP/s (best) "
               "| AdamW moments of rank 0 GB | peak RSS of rank 0 GB best / median | speed-up of train best / median |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    base = [x["metrics"]["train_seconds"] for x in by.get((1, 0), [])]
    for key in sorted(by):
        t = [x["metrics"]["train_seconds"] for x in by[key]]
        st = [x["metrics"]["seconds"] for x in by[key]]
        rss = [x["metrics"]["peak_rss_mib"] / 1024 for x in by[key]]
        best = min(by[key], key=lambda x: x["metrics"]["train_seconds"])["metrics"]
        moments = best.get("optimizer_state_bytes", 0) / 1e9
        sp = (f"{min(base) / min(t):.2f}× / {statistics.median(base) / statistics.median(t):.2f}×"
              if base else "")
        out.append(f"| {key[0]} | {key[1] if key[0] > 1 else '–'} | {min(t):.1f} / {statistics.median(t):.1f} ({len(t)}) "
                   f"| {min(st):.1f} / {statistics.median(st):.1f} | {best['model_gflops_per_second']:.1f} "
                   f"| {moments:.2f} | {min(rss):.2f} / {statistics.median(rss):.2f} | {sp} |")
    return "\n".join(out)


def scaling(a):
    """`--what scaling`: the update stage at 1 and `--processes` ranks (at each of
    `--zero-stages`), alternating per round."""
    exe = os.path.join(os.path.dirname(a.spice_lm), "examples", "bench")
    dtype = (a.dtypes or native_dtype()).split(",")[0]
    runs = [(1, 1)] + [(int(n), int(z)) for n in a.processes.split(",") if int(n) != 1
                       for z in a.zero_stages.split(",")]
    rows = []
    for rnd in range(a.rounds):
        for n, z in runs:
            cmd = [exe, "--model", a.model, "--device", a.device, "--dtype", dtype,
                   "--sequences", str(a.sequences), "--prompt", str(a.prompt), "--completion", str(a.completion),
                   "--micro-batch", a.micro_batch, "--processes", str(n), "--zero-stage", str(z)]
            rows += run(cmd, a.log)
            print(f"round {rnd + 1}/{a.rounds}: {n} process(es), ZeRO stage {z} done", file=sys.stderr)
    print()
    print(scaling_table(rows))


def native_dtype():
    """bf16 where the CPU multiplies it natively (else libtorch emulates it, slowly), else f32."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return "f32"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "f32"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--spice-lm", default="target/release/spice-lm")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline-rounds", type=int,
                    help="run transformers only in the first N rounds (default: every round); "
                         "for a baseline many times slower than ours. The tables give the runs per side.")
    ap.add_argument("--new-tokens", default="128")
    ap.add_argument("--dtypes", help="default: bf16,f32; for --what spice the dtype this CPU "
                    "runs natively (bf16 with avx512_bf16 or AMX, else f32)")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--what", default="all", help="generate, update, all, spice (the "
                    "SPICE-shaped workloads: 8 documents x 4 attempts, 8 questions x 8 answers), or "
                    "scaling (the update stage at 1 and --processes data-parallel ranks)")
    ap.add_argument("--spice-prompts", default="bench-spice-prompts.json",
                    help="--what spice: the prompts file (written from data/corpus when absent)")
    ap.add_argument("--micro-batch", default="1")
    ap.add_argument("--update-mix", help="update rows of mixed lengths, COUNTxPROMPT+COMPLETION[/SAMPLES][,...]; "
                    "cpu.toml's step is 32x548+158/4,48x65+150/8 (both sides then use --micro-batch; "
                    "/S: S rows share a prompt)")
    ap.add_argument("--checkpointing", action="store_true", help="ours: recompute each layer in backward")
    ap.add_argument("--shared-prefix", action="store_true",
                    help="update: also run ours forwarding each common prompt prefix of a micro-batch once "
                         "(the mix's /S), beside ours without it")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N], for both sides")
    ap.add_argument("--log", default="bench-results.jsonl")
    ap.add_argument("--threads", help="intra-op threads for both (default: every core)")
    ap.add_argument("--processes", default="2", help="--what scaling: the world sizes beside 1")
    ap.add_argument("--zero-stages", default="0,1", help="--what scaling: the ZeRO stages of each world size beside 1")
    ap.add_argument("--sequences", type=int, default=16, help="--what scaling: rows of the step")
    ap.add_argument("--prompt", type=int, default=256, help="--what scaling: prompt tokens per row")
    ap.add_argument("--completion", type=int, default=128, help="--what scaling: completion tokens per row")
    ap.add_argument("--from-logs", nargs="+", metavar="LOG",
                    help="print the tables from earlier --log files instead of running")
    a = ap.parse_args()
    if a.dtypes is None:
        a.dtypes = native_dtype() if a.what == "spice" else "bf16,f32"
    dtypes = a.dtypes.split(",")
    batches = [int(x) for x in a.batches.split(",")]
    if a.from_logs:
        rows = [json.loads(l) for f in a.from_logs for l in open(f) if l.startswith("{")]
        if rows and "processes" in rows[0]:
            print(scaling_table(rows))
        else:
            print(table(rows, dtypes, batches))
        return
    if a.what == "scaling":
        scaling(a)
        return
    whats = ["generate", "update"] if a.what == "all" else [a.what]
    baseline_rounds = a.rounds if a.baseline_rounds is None else a.baseline_rounds
    rows = []
    for rnd in range(a.rounds):
        for what in whats:
            for dt in dtypes:
                common = ["--model", a.model, "--dtypes", dt, "--what", what, "--repeats", "1",
                          "--new-tokens", a.new_tokens, "--device", a.device]
                if what == "generate":
                    common += ["--batches", a.batches]
                if what == "spice":
                    common += ["--spice-prompts", a.spice_prompts]
                if a.threads:
                    common += ["--threads", a.threads]
                if what == "update" and a.update_mix:
                    common += ["--update-mix", a.update_mix]
                ours = [a.spice_lm, "bench", "--micro-batch", a.micro_batch] + common
                if a.checkpointing:
                    ours.append("--checkpointing")

                theirs = [a.python, os.path.join(HERE, "transformers_bench.py")] + common
                if what == "update" and a.update_mix:
                    theirs += ["--micro-batch", a.micro_batch]
                rows += run(ours, a.log)
                if what == "update" and a.shared_prefix:
                    # The padded layout above is this variant's baseline, in the same round.
                    rows += run(ours + ["--shared-prefix"], a.log)
                if rnd < baseline_rounds:
                    rows += run(theirs, a.log)
                print(f"round {rnd + 1}/{a.rounds}: {what} {dt} done", file=sys.stderr)
    print()
    print(table(rows, dtypes, batches))


if __name__ == "__main__":
    main()
