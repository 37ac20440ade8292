"""The checks of `pipelines/gpu-check.sh`: our binaries against transformers on one device.

    python pipelines/gpu_check.py --bin-dir DIR --device cuda|cpu --out DIR --work DIR \
        [--rehearse] [--deadline EPOCH] [--build-info TEXT]

1. golden logits: `spice-lm logits` against transformers on the same device, for the tiny
   Qwen2, Qwen3 and Llama-3 fixtures, in f32 and bf16;
2. `spice iterate`, two iterations of the tiny Llama-3 run; every manifest of a stage that
   runs the model must record the device it was asked for; then that run's first update again,
   plain and as rank 0 of a data-parallel world of 1 (NCCL on cuda, Gloo on the CPU): the two
   checkpoints must agree; and generation's sampling draws computed on the device (`spice-lm
   draws`) must equal the CPU's and a SplitMix64 reference, bit for bit;
3. the update step (64 × 1024 tokens, forward + backward + AdamW), time and device memory;
4. generation tokens/s at batches 1, 8, 64, 256;
with 3 and 4 on a randomly initialised model of Qwen3-0.6B's shape, interleaved with
`stages/lib/lm/benches/transformers_bench.py`. The functional checks come first, and rounds of
the measurements stop early when the next one would pass --deadline.

--rehearse (CI, CPU) runs the same code on tiny shapes: the measurements are token runs that
prove the plumbing, and no speed tables are printed.

Writes into --out: results.jsonl (one object per check: "check", "ok", numbers, "detail"),
table.md (also printed), bench.jsonl (every raw benchmark line of both sides, the dropped
first run of each process marked "warmup") and iterate.log (the stages' stderr).
Exits 1 when a check failed; a missed speed target is reported, not a failure.
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "stages", "lib", "lm", "fixtures")
TRANSFORMERS_BENCH = os.path.join(REPO, "stages", "lib", "lm", "benches", "transformers_bench.py")
ARCHS = ["qwen2", "qwen3", "llama3"]

# As stages/lib/lm/tests/tiny_reference.rs: f32 logits within 1e-4 absolute of transformers' on
# these tiny models; bf16 logits within 5% of the largest |logit| of the f32 reference (bf16
# keeps 8 bits of mantissa). Two bf16 implementations that each keep that bound are within
# twice it of each other: transformers' own bf16 is 2-3.5% off the reference on these models.
F32_ABS_TOL = 1e-4
BF16_REF_REL_TOL = 5e-2
BF16_REL_TOL = 2 * BF16_REF_REL_TOL

# Speed targets (ours / transformers); a miss is reported, not a failed check.
GEN_TARGETS = {1: 1.5, 64: 3.0, 256: 3.0}
UPDATE_TARGET = 1.3

# Stages that load the policy, whose manifests must say where it ran.
MODEL_STAGES = ("challenge", "rollout", "update", "eval")

# Qwen3-0.6B's shape (its config.json), for the measurements.
QWEN3_06B = dict(
    vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
    num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
    rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=40960,
)
# The rehearsal's stand-in: tiny layers, but the real vocabulary, so the synthetic
# tokenizer and the LM head of the real shape are exercised too.
QWEN3_REHEARSAL = dict(
    QWEN3_06B, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16,
)
SPECIAL_TOKENS = {151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>"}
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class Failed(Exception):
    """A check that could not run to its end; the message says why."""


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def clean(v):
    """JSON without NaN/Infinity (not valid JSON; serde_json rejects them): they become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    return v


def tail(text, lines=25):
    return "\n".join(text.strip().splitlines()[-lines:])


def gb(b):
    return f"{b / 1e9:.2f}" if finite(b) else "–"


def fmt(x, spec):
    return format(x, spec) if finite(x) else "–"


def times(x):
    return f"{x:.2f}×" if finite(x) else "–"


def verdict(met):
    return "unknown" if met is None else "met" if met else "missed"


class Check:
    def __init__(self, a):
        self.a = a
        self.t0 = a.started or time.time()  # the shell's start, so both clocks agree
        self.device = a.device  # as our binaries take it: cpu | cuda
        self.expect_label = "cpu" if a.device == "cpu" else "cuda:0"
        self.spice_lm = os.path.join(a.bin_dir, "spice-lm")
        self.results_path = os.path.join(a.out, "results.jsonl")
        self.bench_log = os.path.join(a.out, "bench.jsonl")
        # Lines the shell wrote before us (unpacking, doctor) count too.
        self.results = []
        if os.path.exists(self.results_path):
            with open(self.results_path) as f:
                self.results = [json.loads(l) for l in f if l.strip()]

    # -- bookkeeping ---------------------------------------------------------------------

    def say(self, msg):
        print(f"[gpu-check {time.time() - self.t0:6.1f} s] {msg}", flush=True)

    def record(self, check, ok, detail, **numbers):
        r = clean({"check": check, "ok": bool(ok), **numbers, "detail": detail})
        self.results.append(r)
        with open(self.results_path, "a") as f:
            f.write(json.dumps(r) + "\n")
        self.say(f"{check}: {'ok' if ok else 'FAILED'} — {detail}")
        return r

    def section(self, name, fn, *args):
        """Run one check; an exception fails it with its message rather than ending the run."""
        self.say(f"== {name}")
        t = time.time()
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 — any failure is this check's result
            self.record(name, False, f"{type(e).__name__}: {e}", seconds=time.time() - t)
        self.say(f"== {name}: {time.time() - t:.1f} s")

    def left(self):
        """Seconds until the deadline (infinite without one)."""
        return self.a.deadline - time.time() if self.a.deadline else math.inf

    def run(self, cmd, env=None, stderr_to=None, check=True):
        """Run a command; stdout is returned, stderr goes to a file or is kept for errors."""
        cmd = [str(c) for c in cmd]
        full_env = dict(os.environ, **(env or {}))
        if stderr_to:
            with open(stderr_to, "a") as err:
                err.write(f"\n$ {' '.join(cmd)}\n")
                err.flush()
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=full_env, cwd=REPO)
            stderr = open(stderr_to).read()
        else:
            p = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=REPO)
            stderr = p.stderr
        if check and p.returncode != 0:
            # Binary and subcommand (or script) only: the full command is in the log.
            what = " ".join(os.path.basename(c) for c in cmd[:2])
            print(f"failed: {' '.join(cmd)}", flush=True)
            raise Failed(f"{what} exited {p.returncode}:\n{tail(stderr)}")
        return p.returncode, p.stdout, stderr

    # -- 1. golden logits ----------------------------------------------------------------

    def golden_logits(self):
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM

        dev = torch.device("cuda", 0) if self.device == "cuda" else torch.device("cpu")
        for arch in ARCHS:
            folder = os.path.join(FIXTURES, f"tiny-{arch}")
            ref_path = os.path.join(folder, "reference.safetensors")
            ref = load_file(ref_path)
            inputs = sorted((k for k in ref if k.startswith("input_")), key=lambda k: int(k[6:]))
            for dt, tdt in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
                name = f"golden_logits/{arch}/{dt}"
                t = time.time()
                try:
                    ours_path = os.path.join(self.a.work, f"logits-{arch}-{dt}.safetensors")
                    self.run([self.spice_lm, "logits", "--model", folder, "--inputs", ref_path,
                              "--out", ours_path, "--device", self.device, "--dtype", dt])
                    ours = load_file(ours_path)
                    model = AutoModelForCausalLM.from_pretrained(folder, dtype=tdt).to(dev).eval()
                    d_theirs = d_ref = d_theirs_ref = scale = 0.0
                    for k in inputs:
                        i = k[len("input_"):]
                        with torch.no_grad():
                            theirs = model(ref[k].unsqueeze(0).to(dev)).logits[0].float().cpu()
                        mine = ours.get(f"logits_{i}")
                        if mine is None or mine.shape != theirs.shape:
                            raise Failed(f"logits_{i}: ours {None if mine is None else tuple(mine.shape)}, "
                                         f"transformers {tuple(theirs.shape)}")
                        want = ref[f"logits_{i}"]  # transformers, f32, CPU, at fixture time
                        # max() of a NaN difference is NaN, which fails every comparison below.
                        d_theirs = max(d_theirs, (mine - theirs).abs().max().item(), key=nan_first)
                        d_ref = max(d_ref, (mine - want).abs().max().item(), key=nan_first)
                        d_theirs_ref = max(d_theirs_ref, (theirs - want).abs().max().item(), key=nan_first)
                        scale = max(scale, theirs.abs().max().item())
                    del model
                    rel = d_theirs / scale if scale > 0 else math.nan
                    rel_ref = d_ref / scale if scale > 0 else math.nan
                    if dt == "f32":
                        tol, ok = F32_ABS_TOL, finite(d_theirs) and d_theirs < F32_ABS_TOL
                        tol_text = f"abs < {F32_ABS_TOL:g}"
                    else:
                        # Also the Rust test's own bound, against the recorded f32 logits.
                        tol = BF16_REL_TOL
                        ok = finite(rel) and rel < BF16_REL_TOL and finite(rel_ref) and rel_ref < BF16_REF_REL_TOL
                        tol_text = f"rel < {BF16_REL_TOL:g}; ours vs reference rel {rel_ref:.3g} < {BF16_REF_REL_TOL:g}"
                    note = ""
                    if dt == "bf16" and d_ref == 0:
                        # spice-lm computes in f32 where bf16 is emulated (a CPU without
                        # avx512_bf16/amx); on a GPU this would mean bf16 was not applied.
                        note = "; ours equals the f32 reference: computed in f32 here"
                    self.record(
                        name, ok,
                        f"max |ours - transformers| {d_theirs:.3g}, rel {rel:.3g} ({tol_text}); "
                        f"|logit| up to {scale:.3g}; vs the recorded f32 logits: ours {d_ref:.3g}, "
                        f"transformers {d_theirs_ref:.3g}{note}",
                        arch=arch, dtype=dt, device=self.expect_label, inputs=len(inputs),
                        max_abs_diff=d_theirs, max_rel_diff=rel, max_abs_logit=scale,
                        tolerance=tol, tolerance_kind="abs" if dt == "f32" else "rel",
                        ours_vs_reference=d_ref, ours_vs_reference_rel=rel_ref,
                        transformers_vs_reference=d_theirs_ref,
                        reference_tolerance_rel=None if dt == "f32" else BF16_REF_REL_TOL,
                        seconds=time.time() - t,
                    )
                except Exception as e:  # noqa: BLE001 — the other fixtures still run
                    self.record(name, False, f"{type(e).__name__}: {e}", arch=arch, dtype=dt,
                                seconds=time.time() - t)

    # -- 2. spice iterate ----------------------------------------------------------------

    def iterate(self):
        """Two iterations of the tiny run of tests/tests/common/tiny.rs on this device."""
        d = os.path.join(self.a.work, "tiny-run")
        shutil.rmtree(d, ignore_errors=True)
        profile = write_tiny_run(d, "cpu" if self.device == "cpu" else "cuda")
        run_dir = os.path.join(d, "run")
        log = os.path.join(self.a.out, "iterate.log")
        env = {"SPICE_PROMPTS": os.path.join(REPO, "pipelines", "prompts")}
        if self.a.rehearse:
            env["SPICE_LM_THREADS"] = "1"  # as the iterate tests: tiny tensors, threads only cost
        t = time.time()
        _, stdout, _ = self.run([os.path.join(self.a.bin_dir, "spice"), "iterate", "--config", profile,
                                 "--run", run_dir], env=env, stderr_to=log)
        secs = time.time() - t
        iters = [l for l in stdout.splitlines() if l.startswith("iter ")]
        manifests, bad, stage_seconds = [], [], {}
        for root, _, files in os.walk(run_dir):
            for f in sorted(files):
                if not (f.startswith("_manifest") and f.endswith(".json")):
                    continue
                path = os.path.join(root, f)
                m = json.load(open(path))
                rel = os.path.relpath(path, run_dir)
                stage = m.get("stage")
                stage_seconds[stage] = stage_seconds.get(stage, 0.0) + float(m.get("seconds") or 0)
                entry = {"manifest": rel, "stage": stage, "device": m.get("device")}
                manifests.append(entry)
                if stage in MODEL_STAGES and m.get("device") != self.expect_label:
                    bad.append(entry)
        seen = {m["stage"] for m in manifests}
        missing = [s for s in MODEL_STAGES if s not in seen]
        model_manifests = [m for m in manifests if m["stage"] in MODEL_STAGES]
        ok = len(iters) == 2 and not bad and not missing
        why = []
        if len(iters) != 2:
            why.append(f"{len(iters)} iteration lines instead of 2")
        if missing:
            why.append(f"no manifest of {', '.join(missing)}")
        if bad:
            why.append("wrong or missing device in " + ", ".join(
                f"{b['manifest']} ({b['stage']}: {b['device']!r})" for b in bad[:6]))
        self.record(
            "iterate", ok,
            (f"2 iterations in {secs:.1f} s; {len(model_manifests)} model-stage manifests, all on "
             f"{self.expect_label}") if ok else "; ".join(why),
            device=self.expect_label, iterations=len(iters), seconds=secs,
            manifests=manifests, stage_seconds=stage_seconds, summary_lines=iters,
        )

    def update_world1(self):
        """The iterate run's first update again, plain and as rank 0 of a world of 1 joined the
        way torchrun's variables ask (NCCL on cuda, Gloo on the CPU): the same checkpoint."""
        src = os.path.join(self.a.work, "tiny-run", "run")
        if not os.path.isdir(os.path.join(src, "iter-0000", "scored")):
            raise Failed("the iterate check's run is needed (and is missing)")
        log = os.path.join(self.a.out, "iterate.log")
        port = free_port()
        env = {"SPICE_LM_THREADS": "1"} if self.a.rehearse else {}
        result = {}
        for name, launcher in [("plain", {}), ("world1", {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
                                                          "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})]:
            d = os.path.join(self.a.work, f"update-{name}")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(src, d)
            self.run([os.path.join(self.a.bin_dir, "spice-update"), "--run", d, "--iter", "0", "--force"],
                     env={**env, **launcher}, stderr_to=log)
            m = json.load(open(os.path.join(d, "iter-0000", "update", "_manifest.json")))
            result[name] = (os.path.join(d, "iter-0000", "checkpoint", "model.safetensors"), m.get("metrics", {}))
        from safetensors.torch import load_file
        base = load_file(os.path.join(self.a.work, "tiny-run", "model", "model.safetensors"))
        plain, world1 = load_file(result["plain"][0]), load_file(result["world1"][0])
        diff = max((plain[k].float() - world1[k].float()).abs().max().item() for k in plain)
        step = max((plain[k].float() - base[k].float()).abs().max().item() for k in plain if k in base)
        metrics = result["world1"][1]
        backend, want = metrics.get("dist_backend"), "gloo" if self.device == "cpu" else "nccl"
        # One rank sums one gradient: only kernels' own nondeterminism may differ (on the CPU,
        # nothing). The tiny run's random model writes no valid task, so its advantages and
        # gradients are zero and the step may not move the weights: the collectives still run
        # (the data-parallel tests on the CPU compare moving steps).
        ok = backend == want and metrics.get("world_size") == 1 and diff <= 1e-3 * step
        self.record("update_world1", ok,
                    f"rank 0 of 1 over {backend} (want {want}): max |Δw| {diff:.2e} from the plain update, "
                    f"whose step moved the weights by {step:.2e}"
                    + (" (zero advantages in the tiny run)" if step == 0 else ""),
                    backend=backend, max_abs_diff=diff, step=step, world_size=metrics.get("world_size"))

    def sampling_draws(self):
        """Generation's per-row draws computed on the device equal the CPU's and the SplitMix64
        reference bit for bit: the sampled streams do not depend on where a run samples."""
        seeds, count = [0, 1, 2**63 + 5, 2**64 - 1], 257
        mask = 2**64 - 1

        def mix(z):
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
            return z ^ (z >> 31)

        def reference(seed):
            key = mix(seed)
            out = []
            for t in range(count):
                u = (mix((key + 0x9E3779B97F4A7C15 * (t + 1)) & mask) >> 40) / 2**24
                out.append(struct.unpack("<I", struct.pack("<f", u))[0])
            return out

        bad = []
        for seed in seeds:
            got = {}
            for dev in sorted({"cpu", self.device}):
                _, out, _ = self.run([self.spice_lm, "draws", "--seed", seed, "--count", count, "--device", dev])
                got[dev] = json.loads(out)["bits"]
            want = reference(seed)
            bad += [f"seed {seed} on {d}" for d, bits in got.items() if bits != want]
        self.record("sampling_draws", not bad,
                    f"{len(seeds)} streams × {count} draws on {self.device} and cpu "
                    + ("equal the SplitMix64 reference" if not bad else f"differ: {', '.join(bad)}"),
                    streams=len(seeds), draws=count)

    # -- 3 and 4. measurements -----------------------------------------------------------

    def bench_model(self):
        """A random Qwen3 model of the measured shape, with a tokenizer covering its vocabulary."""
        d = os.path.join(self.a.work, "qwen3-shape")
        t = time.time()
        make_bench_model(d, QWEN3_REHEARSAL if self.a.rehearse else QWEN3_06B, self.device)
        self.say(f"random Qwen3 model written to {d} in {time.time() - t:.1f} s")
        return d

    def bench_round(self, cmds, what):
        """Ours and theirs once each (order alternating by round), raw lines to bench.jsonl."""
        rows = {}
        for impl, cmd in cmds:
            rc, out, err = self.run(cmd, check=False)
            got = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
            if got:
                got[0]["warmup"] = True  # dropped from the numbers (see the callers)
            with open(self.bench_log, "a") as f:
                for r in got:
                    f.write(json.dumps(r) + "\n")
            rows[impl] = (got, None if rc == 0 else f"{impl} {what} exited {rc}: {tail(err, 8)}")
        return rows

    def interleave(self, what, common, rounds):
        """Up to `rounds` rounds of ours and transformers (order alternating), stopping when
        another round would pass the deadline. Each process's first line is a warmup and is
        dropped. Returns the kept lines per side, the errors and the rounds run."""
        sides = [("spice-lm", [self.spice_lm, "bench"] + common),
                 ("transformers", [sys.executable, TRANSFORMERS_BENCH] + common)]
        runs = {"spice-lm": [], "transformers": []}
        errors, done, round_secs = [], 0, 0.0
        for r in range(rounds):
            if r > 0 and round_secs > self.left():
                self.say(f"{what}: stopping after {r} rounds, {self.left():.0f} s left before the deadline")
                break
            t = time.time()
            for impl, (got, err) in self.bench_round(sides if r % 2 == 0 else sides[::-1], what).items():
                runs[impl] += got[1:]
                if err:
                    errors.append(err)
            round_secs = time.time() - t
            done += 1
            self.say(f"{what} round {r + 1}/{rounds}: {round_secs:.1f} s")
        return runs, errors, done

    def generate(self, model):
        if self.a.rehearse:
            batches, rounds, new_tokens, prompt_len = [1, 2], 1, 4, 8
        else:
            batches, rounds, new_tokens, prompt_len = [1, 8, 64, 256], self.a.rounds, 256, 64
        # Each process starts with a batch-1 run that is dropped: it pays for CUDA's lazy
        # setup (cuBLAS handles, kernel loading), which is not generation speed.
        common = ["--model", model, "--device", self.device, "--what", "generate", "--dtypes", "bf16",
                  "--batches", ",".join(map(str, [batches[0]] + batches)), "--new-tokens", new_tokens,
                  "--prompt-len", prompt_len, "--repeats", 1]
        t_all = time.time()
        runs, errors, done = self.interleave("generate", common, rounds)
        for b in batches:
            ours = [x["tokens_per_s"] for x in runs["spice-lm"] if x["batch"] == b]
            theirs = [x["tokens_per_s"] for x in runs["transformers"] if x["batch"] == b]
            o = (max(ours), statistics.median(ours)) if ours else (None, None)
            t_ = (max(theirs), statistics.median(theirs)) if theirs else (None, None)
            ratio = [o[i] / t_[i] if o[i] and t_[i] else None for i in (0, 1)]
            target = GEN_TARGETS.get(b)
            met = None if target is None or ratio[1] is None else ratio[1] >= target
            detail = ("token run: " if self.a.rehearse else "") + (
                      f"batch {b}: ours {fmt(o[0], '.1f')} / {fmt(o[1], '.1f')} tok/s (best / median), "
                      f"transformers {fmt(t_[0], '.1f')} / {fmt(t_[1], '.1f')}, ratio {times(ratio[0])} / "
                      f"{times(ratio[1])}" + (f", target {target}× {verdict(met)}" if target else ""))
            if errors:
                detail += " — " + " | ".join(e.splitlines()[0] for e in errors[:2])
            self.record(
                "generate", bool(ours), detail, batch=b, dtype="bf16", device=self.expect_label,
                new_tokens=new_tokens, prompt_len=prompt_len, rounds=done, runs_ours=len(ours),
                runs_theirs=len(theirs), ours_tok_s_best=o[0], ours_tok_s_median=o[1],
                theirs_tok_s_best=t_[0], theirs_tok_s_median=t_[1], ratio_best=ratio[0],
                ratio_median=ratio[1], target=target, target_met=met, token_run=self.a.rehearse,
                errors=errors or None, seconds=time.time() - t_all,
            )

    def update(self, model):
        if self.a.rehearse:
            rows, seq, completion, micro, rounds = 2, 32, 16, 1, 1
        else:
            rows, seq, completion, micro, rounds = 64, 1024, 512, self.a.micro_batch, self.a.update_rounds
        # Two steps per process; the first (allocator growth, cuBLAS setup) is dropped.
        common = ["--model", model, "--device", self.device, "--what", "update", "--dtypes", "bf16",
                  "--update-rows", rows, "--update-seq", seq, "--update-completion", completion,
                  "--micro-batch", micro, "--repeats", 2]
        t_all = time.time()
        runs, errors, done = self.interleave("update", common, rounds)
        mem_key = "peak_rss_bytes" if self.device == "cpu" else "gpu_used_bytes"
        stat = {}
        for impl, got in runs.items():
            secs = [x["seconds"] for x in got]
            mem = [x.get(mem_key) for x in got if finite(x.get(mem_key))]
            stat[impl] = dict(
                best=min(secs) if secs else None, median=statistics.median(secs) if secs else None,
                mem=max(mem) if mem else None, runs=len(secs),
                peak_reserved=max((x["peak_gpu_bytes"] for x in got if "peak_gpu_bytes" in x), default=None),
            )
        o, t_ = stat["spice-lm"], stat["transformers"]
        speedup = [t_[k] / o[k] if o[k] and t_[k] else None for k in ("best", "median")]
        less_mem = None if o["mem"] is None or t_["mem"] is None else o["mem"] < t_["mem"]
        met = None if speedup[1] is None or less_mem is None else (speedup[1] >= UPDATE_TARGET and less_mem)
        mem_name = "peak RSS" if mem_key == "peak_rss_bytes" else "GPU used"
        detail = ("token run: " if self.a.rehearse else "") + (
                  f"{rows} × {seq} tokens (loss on {completion}), micro-batch {micro}: ours "
                  f"{fmt(o['best'], '.2f')} / {fmt(o['median'], '.2f')} s, {mem_name} {gb(o['mem'])} GB; "
                  f"transformers {fmt(t_['best'], '.2f')} / {fmt(t_['median'], '.2f')} s, {gb(t_['mem'])} GB; "
                  f"speed-up {times(speedup[0])} / {times(speedup[1])}, "
                  f"target {UPDATE_TARGET}× with less memory {verdict(met)}")
        if errors:
            detail += " — " + " | ".join(e.splitlines()[0] for e in errors[:2])
        self.record(
            "update", o["runs"] > 0, detail, dtype="bf16", device=self.expect_label, rows=rows, seq=seq,
            completion=completion, micro_batch=micro, rounds=done, runs_ours=o["runs"],
            runs_theirs=t_["runs"], ours_seconds_best=o["best"], ours_seconds_median=o["median"],
            theirs_seconds_best=t_["best"], theirs_seconds_median=t_["median"],
            speedup_best=speedup[0], speedup_median=speedup[1], memory_kind=mem_key,
            ours_memory_bytes=o["mem"], theirs_memory_bytes=t_["mem"],
            theirs_peak_reserved_bytes=t_["peak_reserved"], target=UPDATE_TARGET,
            less_memory=less_mem, target_met=met, token_run=self.a.rehearse, errors=errors or None,
            seconds=time.time() - t_all,
        )

    def measurements(self):
        model = self.bench_model() if self.left() >= 30 else None
        # A first round is about 30 s (update) and 90 s (generation) on one H200: a section
        # that cannot finish one before the deadline is skipped and says so.
        for name, fn, need in [("update", self.update, 30), ("generate", self.generate, 60)]:
            if model is None or self.left() < need:
                self.record(name, True, f"SKIPPED: {self.left():.0f} s left before the deadline",
                            skipped=True)
            else:
                self.section(name, fn, model)

    # -- report --------------------------------------------------------------------------

    def doctor(self):
        path = os.path.join(self.a.out, "doctor.json")
        try:
            d = json.load(open(path))
        except (OSError, ValueError) as e:
            self.record("doctor", True, f"no doctor report ({e}); noted, not a failure", available=False)
            return
        if "error" in d and len(d) == 1:
            self.record("doctor", True, f"`spice doctor` failed: {d['error']}; noted, not a failure",
                        available=False)
            return
        g = lambda *ks: _dig(d, ks)
        self.record(
            "doctor", True,
            f"libtorch {g('torch', 'version')} (CUDA {g('torch', 'built_for_cuda')}), CUDA backend loaded "
            f"{g('cuda', 'backend_loaded')}, {g('cuda', 'device_count')} device(s), auto → {g('auto', 'device')}",
            available=True, auto_device=g("auto", "device"), cuda_devices=g("cuda", "device_count"),
        )

    def table(self, info):
        lines = [f"# spice-rs GPU check — {info['date']}", ""]
        lines += [f"- mode: {'rehearsal on the CPU (token runs, no speed tables)' if self.a.rehearse else 'device ' + self.expect_label}",
                  f"- GPU: {info['gpu']}", f"- CPU: {info['cpu']}",
                  f"- torch {info['torch']} (CUDA {info['torch_cuda']}), transformers {info['transformers']}, "
                  f"Python {info['python']}",
                  f"- binaries: {self.a.build_info or 'not recorded'}",
                  f"- total: {time.time() - self.t0:.0f} s of checks", ""]
        lines += ["| check | ok | seconds | detail |", "| --- | --- | --- | --- |"]
        for r in self.results:
            secs = r.get("seconds")
            detail = " ⏎ ".join(l.strip() for l in r["detail"].splitlines() if l.strip()).replace("|", "\\|")
            if len(detail) > 600:  # results.jsonl and the logs keep all of it
                detail = detail[:600] + " …"
            lines.append(f"| {r['check']} | {'ok' if r['ok'] else '**FAILED**'} | "
                         f"{fmt(secs, '.1f') if secs is not None else ''} | {detail} |")
        if not self.a.rehearse:
            gen = [r for r in self.results if r["check"] == "generate" and "batch" in r]
            if gen:
                g0 = gen[0]
                lines += ["", f"Generation, bf16, {g0['prompt_len']}-token prompts, {g0['new_tokens']} new tokens "
                              f"per row, {g0['rounds']} interleaved rounds (tokens/s):", "",
                          "| batch | spice-lm best / median | transformers best / median | ratio best / median | target |",
                          "| --- | --- | --- | --- | --- |"]
                for r in gen:
                    tgt = f"{r['target']}× {verdict(r['target_met'])}" if r.get("target") else "–"
                    lines.append(
                        f"| {r['batch']} | {fmt(r['ours_tok_s_best'], '.1f')} / {fmt(r['ours_tok_s_median'], '.1f')} "
                        f"| {fmt(r['theirs_tok_s_best'], '.1f')} / {fmt(r['theirs_tok_s_median'], '.1f')} "
                        f"| {times(r['ratio_best'])} / {times(r['ratio_median'])} | {tgt} |")
            upd = [r for r in self.results if r["check"] == "update" and "rows" in r]
            for r in upd:
                lines += ["", f"Update step, bf16 autocast over f32 weights, {r['rows']} × {r['seq']} tokens, loss on "
                              f"the last {r['completion']}, micro-batch {r['micro_batch']}, AdamW, {r['rounds']} "
                              f"round(s); memory: device memory in use after the step, CUDA context included:", "",
                          "| | seconds best / median | GPU used GB | allocator peak GB |", "| --- | --- | --- | --- |",
                          f"| spice-lm | {fmt(r['ours_seconds_best'], '.2f')} / {fmt(r['ours_seconds_median'], '.2f')} "
                          f"| {gb(r['ours_memory_bytes'])} | – |",
                          f"| transformers | {fmt(r['theirs_seconds_best'], '.2f')} / {fmt(r['theirs_seconds_median'], '.2f')} "
                          f"| {gb(r['theirs_memory_bytes'])} | {gb(r['theirs_peak_reserved_bytes'])} |",
                          "", f"Speed-up {times(r['speedup_best'])} / {times(r['speedup_median'])} "
                              f"(target {r['target']}× with less memory: {verdict(r['target_met'])})."]
        return "\n".join(lines) + "\n"


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nan_first(x):
    """Key for max() that ranks NaN above every number, so a NaN difference is never hidden."""
    return math.inf if x != x else x


def _dig(d, keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return "?"
        d = d[k]
    return d


def machine_info(device):
    import torch
    try:
        import transformers
        tv = transformers.__version__
    except Exception as e:  # noqa: BLE001
        tv = f"unavailable ({e})"
    gpu = "none"
    if device != "cpu" and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        total = torch.cuda.get_device_properties(0).total_memory
        gpu += f", {total / 2**30:.0f} GiB"
    if shutil.which("nvidia-smi"):
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
            if q:
                gpu = f"{gpu} (nvidia-smi: {q.splitlines()[0]})" if gpu != "none" else f"{q.splitlines()[0]} (unused)"
        except Exception:  # noqa: BLE001
            pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "gpu": gpu, "cpu": f"{cpu}, {os.cpu_count()} cores", "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "transformers": tv, "python": platform.python_version(),
    }


def write_tiny_run(d, device):
    """Corpus, model, benchmark and profile of tests/tests/common/tiny.rs (keep them alike)."""
    corpus = os.path.join(d, "corpus")
    os.makedirs(corpus)
    for i in range(6):
        with open(os.path.join(corpus, f"doc{i}.txt"), "w") as f:
            f.write(f"Document {i}. The river Alpha{i} is {100 + i * 37} km long and flows north.\n\nIts "
                    f"basin covers {2000 + i * 311} square km. Three towns stand on its banks; the largest "
                    f"has {5000 + i * 1234} people.\n\nThe river freezes for {2 + i} weeks each winter.")
    model = os.path.join(d, "model")
    shutil.copytree(os.path.join(FIXTURES, "tiny-llama3"), model,
                    ignore=shutil.ignore_patterns("reference.safetensors"))
    bench = os.path.join(d, "arith.jsonl")
    with open(bench, "w") as f:
        for i in range(4):
            f.write(json.dumps({"problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n")
    profile = os.path.join(d, "tiny.toml")
    with open(profile, "w") as f:
        f.write(f"""[run]
name = "tiny"
iterations = 2
model = {json.dumps(model)}
device = "{device}"
dtype = "f32"
seed = 99

[corpus]
paths = [{json.dumps(corpus)}]
max_doc_tokens = 64
min_doc_tokens = 4

[challenger]
documents_per_iteration = 3
num_generations = 2
max_attempts = 3
attempts_per_round = 2
prompt_set = "compact"
max_completion_length = 16
batch_size = 4

[reasoner]
num_generations = 2
max_completion_length = 12
batch_size = 4

[update]
learning_rate = 1e-3
micro_batch_size = 2

[eval]
eval_every = 1
benchmarks = [{json.dumps(bench)}]
max_completion_length = 8
batch_size = 4
""")
    return profile


def make_bench_model(d, shape, device):
    """save_pretrained of a random Qwen3 in bf16, and a WordLevel tokenizer with one token per
    id (generation decodes random ids, so every id must have a token)."""
    import torch
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, Qwen3Config

    shutil.rmtree(d, ignore_errors=True)
    cfg = Qwen3Config(**shape, bos_token_id=151643, eos_token_id=151645, pad_token_id=151643)
    # Initialising on the device is quicker than 0.6B normal draws on the CPU; the CPU is the
    # fallback should this transformers not build under a device context.
    try:
        with torch.device("cuda" if device == "cuda" else "cpu"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    except Exception as e:  # noqa: BLE001
        print(f"building on {device} failed ({e}); building on the CPU", flush=True)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(d)  # safetensors; the tied LM head is stored once
    del model
    v = shape["vocab_size"]
    vocab = {SPECIAL_TOKENS.get(i, f"t{i}"): i for i in range(v)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS.values()])
    if tok.get_vocab_size(True) != v:
        raise Failed(f"synthetic tokenizer has {tok.get_vocab_size(True)} tokens, want {v}")
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>",
                   "pad_token": "<|endoftext|>", "chat_template": CHATML}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True, help="folder of spice, spice-lm and the stage binaries")
    ap.add_argument("--device", choices=["cpu", "cuda"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True, help="scratch folder (models, the tiny run)")
    ap.add_argument("--rehearse", action="store_true", help="tiny shapes, token runs (CI on the CPU)")
    ap.add_argument("--deadline", type=float, default=0, help="Unix time by which measurements stop")
    ap.add_argument("--started", type=float, default=0, help="Unix time the check began (for its clock)")
    ap.add_argument("--rounds", type=int, default=3, help="generation rounds (each: ours and theirs)")
    ap.add_argument("--update-rounds", type=int, default=2)
    ap.add_argument("--micro-batch", type=int, default=8, help="rows per pass of the update, both sides")
    ap.add_argument("--build-info", default="")
    ap.add_argument("--skip", default="", help="comma-separated: golden, iterate, measure")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    c = Check(a)
    skip = set(filter(None, a.skip.split(",")))
    try:
        info = machine_info(a.device)
    except Exception as e:  # noqa: BLE001 — without torch nothing below runs either
        c.record("python", False, f"torch is not importable with {sys.executable}: {e}")
        return 1
    c.say(f"{info['gpu']} | {info['cpu']} | torch {info['torch']} | transformers {info['transformers']}")
    try:  # "Loading weights" bars would fill the log
        import transformers
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 — reported by the checks that need it
        pass
    if a.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            c.record("cuda", False, "torch sees no CUDA device")
    c.doctor()
    if "golden" not in skip:
        c.section("golden_logits", c.golden_logits)
    if "iterate" not in skip:
        c.section("iterate", c.iterate)
        c.section("update_world1", c.update_world1)
        c.section("sampling_draws", c.sampling_draws)
    if "measure" not in skip:
        c.section("measurements", c.measurements)
    table = c.table(info)
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(table)
    print("\n" + table, flush=True)
    failed = [r["check"] for r in c.results if not r["ok"]]
    if failed:
        print(f"gpu-check: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"gpu-check: all {len(c.results)} checks ok", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
