#!/usr/bin/env python3
"""Write a generated arithmetic benchmark (JSONL, `aime` layout: id, problem, answer).

Two-digit additions and subtractions with known answers, fixed by the seed, so anyone can
regenerate the set the README's number was measured on:

    python3 stages/eval/bench/make_arithmetic.py --n 50 --seed 0 > data/bench/arith50.jsonl
    just eval --model data/models/smollm2-135m-instruct --bench arith=data/bench/arith50.jsonl \
        --out data/eval/smollm2-arith --max-new-tokens 256
"""
import argparse
import json
import random
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="number of problems")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    for i in range(a.n):
        x, y = rng.randint(10, 99), rng.randint(10, 99)
        op = rng.choice("+-")
        answer = x + y if op == "+" else x - y
        row = {"id": f"arith-{i:04d}", "problem": f"What is {x} {op} {y}?", "answer": str(answer)}
        sys.stdout.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
