"""Interleave `spice-lm bench` and the transformers baseline, then print best/median tables.

    python stages/lm/benches/compare.py --model data/models/smollm2-135m-instruct \
        --spice-lm target/release/spice-lm [--rounds 5] [--dtypes bf16,f32] [--what all]

Each round runs ours then theirs for each (measurement, dtype), one run each, so a noisy
neighbour hurts both alike. Raw JSON lines go to --log (default bench-results.jsonl).
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--spice-lm", default="target/release/spice-lm")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--new-tokens", default="128")
    ap.add_argument("--dtypes", default="bf16,f32")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--what", default="all", help="generate, update or all")
    ap.add_argument("--micro-batch", default="1")
    ap.add_argument("--log", default="bench-results.jsonl")
    ap.add_argument("--threads", help="intra-op threads for both (default: every core)")
    a = ap.parse_args()
    whats = ["generate", "update"] if a.what == "all" else [a.what]
    rows = []
    for rnd in range(a.rounds):
        for what in whats:
            for dt in a.dtypes.split(","):
                common = ["--model", a.model, "--dtypes", dt, "--what", what, "--repeats", "1",
                          "--new-tokens", a.new_tokens]
                if what == "generate":
                    common += ["--batches", a.batches]
                if a.threads:
                    common += ["--threads", a.threads]
                ours = [a.spice_lm, "bench", "--device", "cpu", "--micro-batch", a.micro_batch] + common
                theirs = [a.python, os.path.join(HERE, "transformers_bench.py")] + common
                rows += run(ours, a.log)
                rows += run(theirs, a.log)
                print(f"round {rnd + 1}/{a.rounds}: {what} {dt} done", file=sys.stderr)

    def stats(impl, bench, dt, key, **match):
        v = [r[key] for r in rows if r["impl"] == impl and r["bench"] == bench and r["dtype"] == dt
             and all(r.get(k) == x for k, x in match.items())]
        return (max(v) if key == "tokens_per_s" else min(v), statistics.median(v)) if v else (None, None)

    if "generate" in whats:
        print("\n| dtype | batch | spice-lm tok/s best / median | transformers best / median | ratio best / median |")
        print("| --- | --- | --- | --- | --- |")
        for dt in a.dtypes.split(","):
            for b in [int(x) for x in a.batches.split(",")]:
                ob, om = stats("spice-lm", "generate", dt, "tokens_per_s", batch=b)
                tb, tm = stats("transformers", "generate", dt, "tokens_per_s", batch=b)
                if ob and tb:
                    print(f"| {dt} | {b} | {ob:.0f} / {om:.0f} | {tb:.0f} / {tm:.0f} | {ob / tb:.2f}× / {om / tm:.2f}× |")
    if "update" in whats:
        print("\n| dtype | spice-lm s best / median | peak GB | transformers s best / median | peak GB | speed-up best / median |")
        print("| --- | --- | --- | --- | --- | --- |")
        for dt in a.dtypes.split(","):
            ob, om = stats("spice-lm", "update", dt, "seconds")
            tb, tm = stats("transformers", "update", dt, "seconds")
            op = max(r["peak_rss_bytes"] or 0 for r in rows if r["impl"] == "spice-lm" and r["bench"] == "update" and r["dtype"] == dt) / 1e9
            tp = max(r["peak_rss_bytes"] or 0 for r in rows if r["impl"] == "transformers" and r["bench"] == "update" and r["dtype"] == dt) / 1e9
            if ob and tb:
                print(f"| {dt} | {ob:.1f} / {om:.1f} | {op:.2f} | {tb:.1f} / {tm:.1f} | {tp:.2f} | {tb / ob:.2f}× / {tm / om:.2f}× |")


if __name__ == "__main__":
    main()
