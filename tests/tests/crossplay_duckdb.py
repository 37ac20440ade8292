"""The numbers of `spice crossplay` recounted independently with DuckDB SQL over the shards of a
run's cross-play cells (README.md, "Cross-play"), and crossplay.csv as Polars loads it.

    python tests/tests/crossplay_duckdb.py RUN_DIR

Prints {"cells": [...], "csv_rows": N}: one object per cell whose scored/ has committed.
"""
import glob
import json
import math
import os
import re
import sys

import duckdb
import polars as pl

Z = 1.959963984540054


def complete(folder):
    files = sorted(glob.glob(os.path.join(folder, "_manifest*.json")))
    if not files:
        return None
    ms = [json.load(open(f)) for f in files]
    count = ms[0]["shard"]["count"]
    if {m["shard"]["index"] for m in ms if m["shard"]["count"] == count} != set(range(count)):
        return None
    return sorted(
        os.path.join(folder, o["file"])
        for m in ms
        for o in m["outputs"]
        if o["file"].startswith("part-") and o["file"].endswith(".parquet")
    )


def wilson(k, n):
    if n == 0:
        return None, None
    p = k / n
    z2 = Z * Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def main():
    run = sys.argv[1]
    con = duckdb.connect()
    cells = []
    for cell in sorted(glob.glob(os.path.join(run, "crossplay", "challenger-*", "reasoner-*"))):
        m = re.search(r"challenger-(\d+)/reasoner-(\d+)$", cell)
        tasks = complete(os.path.join(os.path.dirname(cell), "tasks"))
        scored = complete(os.path.join(cell, "scored"))
        if tasks is None or scored is None:
            continue
        out = {"challenger": int(m.group(1)), "reasoner": int(m.group(2))}
        if tasks:
            docs, attempts, valid = con.execute(
                f"SELECT count(DISTINCT doc_slot), count(*), count(*) FILTER (WHERE valid) FROM read_parquet({tasks!r})"
            ).fetchone()
        else:
            docs, attempts, valid = 0, 0, 0
        out.update(documents=docs, attempts=attempts, valid_tasks=valid,
                   valid_task_rate=valid / attempts if attempts else None)
        answers = correct = n_tasks = zero = one = 0
        reward = None
        if scored:
            con.execute(f"CREATE OR REPLACE VIEW s AS SELECT * FROM read_parquet({scored!r})")
            n_tasks, zero, one = con.execute(
                """SELECT count(*), count(*) FILTER (WHERE c = 0), count(*) FILTER (WHERE c = n)
                   FROM (SELECT task_id, count(*) AS n, count(*) FILTER (WHERE correct) AS c
                         FROM s WHERE role = 'reasoner' GROUP BY task_id)"""
            ).fetchone()
            answers, correct = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE correct) FROM s WHERE role = 'reasoner'"
            ).fetchone()
            reward = con.execute("SELECT avg(reward) FROM s WHERE role = 'challenger'").fetchone()[0]
        lo, hi = wilson(correct, answers)
        share = lambda a, b: a / b if b else None
        out.update(
            answered_tasks=n_tasks, answers=answers, correct=correct,
            pass_rate=share(correct, answers), pass_rate_lo=lo, pass_rate_hi=hi,
            pass_rate_zero_share=share(zero, n_tasks),
            pass_rate_mid_share=share(n_tasks - zero - one, n_tasks),
            pass_rate_one_share=share(one, n_tasks),
            mean_challenger_reward=reward,
        )
        cells.append(out)
    csv = os.path.join(run, "crossplay", "crossplay.csv")
    rows = pl.read_csv(csv).height if os.path.exists(csv) else None
    print(json.dumps({"cells": cells, "csv_rows": rows}))


main()
