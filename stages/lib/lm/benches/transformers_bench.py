"""The transformers baseline of `spice-lm bench`: same measurements, same JSON lines.

    python stages/lib/lm/benches/transformers_bench.py --model data/models/smollm2-135m-instruct \
        [--dtypes bf16,f32] [--batches 1,8,32,64] [--repeats 1] [--what all|generate|update] \
        [--device cpu|cuda] [--micro-batch M]

Generation: `model.generate` with do_sample, temperature 1, top_p 1, top_k 0 (transformers
otherwise applies top-k 50) and min_new_tokens = max_new_tokens, on random 64-token prompts.
Spice (--what spice): the SPICE-shaped workloads of `spice-lm bench --what spice`, read from
--spice-prompts (see `spice_workloads`).
Update: forward + backward + torch.optim.AdamW on 16 × 512 tokens with the loss on the last
256 (Dr. GRPO surrogate, full-vocabulary logits as a plain transformers step computes them);
bf16 uses autocast over f32 weights. Peak memory is the process's peak RSS during the step.
--micro-batch M accumulates the gradient over passes of M rows (default: the whole batch in
one pass).

On --device cuda the clock is read after torch.cuda.synchronize(), and the update line adds
`peak_gpu_bytes` (torch.cuda.max_memory_reserved over the step: the caching allocator's peak,
without the CUDA context) and `gpu_used_bytes` (total - free device memory right after the
step, CUDA context included: what `spice-lm bench` reports from NVML).
"""

import argparse
import json
import os
import resource
import time

import torch
from transformers import AutoModelForCausalLM


def peak_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def sync(device):
    """Wait for queued kernels, so the clock measures work done rather than work queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dtypes", default="bf16,f32")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--what", default="all")
    ap.add_argument("--update-rows", type=int, default=16)
    ap.add_argument("--update-seq", type=int, default=512)
    ap.add_argument("--update-completion", type=int, default=256)
    ap.add_argument("--update-mix", help="rows of mixed lengths, COUNTxPROMPT+COMPLETION[,...] "
                    "(as spice-lm bench): right-padded per micro-batch, shortest rows first")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--spice-prompts", default="bench-spice-prompts.json",
                    help="--what spice: the workloads' prompts, written by `spice-lm bench`")
    ap.add_argument("--corpus", help="ignored (spice-lm makes the prompts)")
    ap.add_argument("--micro-batch", type=int, default=0,
                    help="rows per forward/backward pass of the update (0: all rows at once)")
    a = ap.parse_args()
    device = torch.device(a.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    for dt in a.dtypes.split(","):
        dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[dt]
        if a.what in ("generate", "all"):
            model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).to(device).eval()
            vocab = model.config.vocab_size
            for b in [int(x) for x in a.batches.split(",")]:
                g = torch.Generator().manual_seed(b)
                ids = torch.randint(3, vocab, (b, a.prompt_len), generator=g).to(device)
                for r in range(a.repeats):
                    sync(device)
                    t0 = time.perf_counter()
                    with torch.inference_mode():
                        out = model.generate(
                            ids, attention_mask=torch.ones_like(ids), do_sample=True,
                            temperature=1.0, top_p=1.0, top_k=0,
                            max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
                            pad_token_id=0,
                        )
                    sync(device)
                    secs = time.perf_counter() - t0
                    n = (out.shape[1] - a.prompt_len) * b
                    print(json.dumps({
                        "impl": "transformers", "bench": "generate", "dtype": dt, "batch": b,
                        "run": r, "new_tokens": n, "seconds": secs, "tokens_per_s": n / secs,
                        "threads": threads, "device": str(device),
                    }), flush=True)
            del model
        if a.what == "spice":
            spice_workloads(a, dt, dtype, device, threads)
        if a.what in ("update", "all"):
            model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).to(device).train()
            vocab = model.config.vocab_size
            opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
            g = torch.Generator().manual_seed(0)
            if a.update_mix:
                shape = []
                for grp in a.update_mix.split(","):
                    count, lens = grp.strip().split("x")
                    # "/S" (S rows per prompt) only matters to a shared-prefix update; this
                    # baseline forwards every row's prompt.
                    p, cl = lens.split("/")[0].split("+")
                    shape += [(int(p), int(cl))] * int(count)
                shape.sort(key=lambda pc: pc[0] + pc[1])
            else:
                shape = [(a.update_seq - a.update_completion, a.update_completion)] * a.update_rows
            n_rows = len(shape)
            seqs = [torch.randint(3, vocab, (p + cl,), generator=g) for p, cl in shape]
            tokens = sum(p + cl for p, cl in shape)
            adv = (torch.rand(n_rows, 1, generator=g) * 2 - 1).to(device)
            c = max(cl for _, cl in shape)
            mb = a.micro_batch if a.micro_batch > 0 else n_rows
            # Each micro-batch right-padded to its longest row; the loss covers completions.
            batches = []
            for s in range(0, n_rows, mb):
                part = shape[s : s + mb]
                width = max(p + cl for p, cl in part)
                x = torch.zeros(len(part), width, dtype=torch.long)
                attn = torch.zeros(len(part), width, dtype=torch.long)
                comp = torch.zeros(len(part), width - 1)
                for i, (p, cl) in enumerate(part):
                    x[i, : p + cl] = seqs[s + i]
                    attn[i, : p + cl] = 1
                    comp[i, p - 1 : p + cl - 1] = 1  # position t predicts token t + 1
                batches.append((s, x.to(device), attn.to(device), comp.to(device)))
            for r in range(a.repeats):
                reset_peak_rss()
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                sync(device)
                t0 = time.perf_counter()
                opt.zero_grad()
                loss = torch.zeros((), device=device)
                # Gradient accumulation over micro-batches (one pass when mb = rows, as before).
                for s, x, attn, comp in batches:
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=(dt == "bf16")):
                        logits = model(x, attention_mask=attn).logits[:, :-1].float()
                    lp = torch.log_softmax(logits, -1).gather(-1, x[:, 1:].unsqueeze(-1)).squeeze(-1)
                    ratio = torch.exp(lp - lp.detach()) * comp
                    part = -(ratio * adv[s : s + x.shape[0]]).sum() / (n_rows * c)
                    part.backward()
                    loss += part.detach()  # no float() here: it would wait for the GPU each pass
                    del logits, lp, ratio, part
                gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sync(device)
                secs = time.perf_counter() - t0
                line = {
                    "impl": "transformers", "bench": "update", "dtype": dt, "rows": n_rows,
                    "seq": a.update_seq, "completion": a.update_completion, "mix": a.update_mix,
                    "tokens": tokens, "run": r, "seconds": secs,
                    "peak_rss_bytes": peak_rss_bytes(), "loss": float(loss),
                    "grad_norm": float(gn), "threads": threads, "device": str(device),
                }
                if a.micro_batch > 0:
                    line["micro_batch"] = mb
                if device.type == "cuda":
                    free, total = torch.cuda.mem_get_info(device)
                    line["peak_gpu_bytes"] = torch.cuda.max_memory_reserved(device)
                    line["gpu_used_bytes"] = total - free
                print(json.dumps(line), flush=True)
            del model, opt


def spice_workloads(a, dt, dtype, device, threads):
    """The SPICE-shaped workloads: each prompt's samples through `generate` with
    num_return_sequences (nothing shared between them), every row in one call, left-padded,
    sampled at temperature 1 with the model's own EOS. New tokens count up to and including
    each row's EOS, as ours do."""
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).to(device).eval()
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    pad = min(eos)
    with open(a.spice_prompts) as f:
        workloads = json.load(f)
    for r in range(a.repeats):
        for w in workloads:
            prompts = w["prompts"]
            width = max(len(p) for p in prompts)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
            torch.manual_seed(r)
            reset_peak_rss()
            sync(device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(
                    ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                    max_new_tokens=w["max_new_tokens"], num_return_sequences=w["samples"],
                    pad_token_id=pad,
                )
            sync(device)
            secs = time.perf_counter() - t0
            new, stopped = 0, 0
            for row in out[:, width:].tolist():
                hit = next((i for i, t in enumerate(row) if t in eos), None)
                new += len(row) if hit is None else hit + 1
                stopped += hit is not None
            print(json.dumps({
                "impl": "transformers", "bench": "spice", "workload": w["name"], "dtype": dt,
                "rows": len(prompts) * w["samples"], "run": r, "new_tokens": new,
                "seconds": secs, "tokens_per_s": new / secs, "stopped_rows": stopped,
                "peak_rss_bytes": peak_rss_bytes(), "threads": threads, "device": str(device),
            }), flush=True)
    del model


if __name__ == "__main__":
    main()
