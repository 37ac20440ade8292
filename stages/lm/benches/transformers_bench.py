"""The transformers baseline of `spice-lm bench`: same measurements, same JSON lines.

    python stages/lm/benches/transformers_bench.py --model data/models/smollm2-135m-instruct \
        [--dtypes bf16,f32] [--batches 1,8,32,64] [--repeats 1] [--what all|generate|update]

Generation: `model.generate` with do_sample, temperature 1, top_p 1, top_k 0 (transformers
otherwise applies top-k 50) and min_new_tokens = max_new_tokens, on random 64-token prompts.
Update: forward + backward + torch.optim.AdamW on 16 × 512 tokens with the loss on the last
256 (Dr. GRPO surrogate, full-vocabulary logits as a plain transformers step computes them);
bf16 uses autocast over f32 weights. Peak memory is the process's peak RSS during the step.
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
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    for dt in a.dtypes.split(","):
        dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[dt]
        if a.what in ("generate", "all"):
            model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).eval()
            vocab = model.config.vocab_size
            for b in [int(x) for x in a.batches.split(",")]:
                g = torch.Generator().manual_seed(b)
                ids = torch.randint(3, vocab, (b, a.prompt_len), generator=g)
                for r in range(a.repeats):
                    t0 = time.perf_counter()
                    with torch.inference_mode():
                        out = model.generate(
                            ids, attention_mask=torch.ones_like(ids), do_sample=True,
                            temperature=1.0, top_p=1.0, top_k=0,
                            max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
                            pad_token_id=0,
                        )
                    secs = time.perf_counter() - t0
                    n = (out.shape[1] - a.prompt_len) * b
                    print(json.dumps({
                        "impl": "transformers", "bench": "generate", "dtype": dt, "batch": b,
                        "run": r, "new_tokens": n, "seconds": secs, "tokens_per_s": n / secs,
                        "threads": threads,
                    }), flush=True)
            del model
        if a.what in ("update", "all"):
            model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).train()
            vocab = model.config.vocab_size
            opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
            g = torch.Generator().manual_seed(0)
            ids = torch.randint(3, vocab, (a.update_rows, a.update_seq), generator=g)
            adv = torch.rand(a.update_rows, 1, generator=g) * 2 - 1
            c = a.update_completion
            for r in range(a.repeats):
                reset_peak_rss()
                t0 = time.perf_counter()
                opt.zero_grad()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=(dt == "bf16")):
                    logits = model(ids).logits[:, -c - 1 : -1].float()
                lp = torch.log_softmax(logits, -1).gather(-1, ids[:, -c:].unsqueeze(-1)).squeeze(-1)
                ratio = torch.exp(lp - lp.detach())
                loss = -(ratio * adv).sum() / (a.update_rows * c)
                loss.backward()
                gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                secs = time.perf_counter() - t0
                print(json.dumps({
                    "impl": "transformers", "bench": "update", "dtype": dt, "rows": a.update_rows,
                    "seq": a.update_seq, "completion": c, "run": r, "seconds": secs,
                    "peak_rss_bytes": peak_rss_bytes(), "loss": float(loss),
                    "grad_norm": float(gn), "threads": threads,
                }), flush=True)
            del model, opt


if __name__ == "__main__":
    main()
