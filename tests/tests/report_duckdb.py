"""The numbers of `spice report` computed independently with DuckDB SQL over a run's shards and
manifests (the definitions of stages/lib/report/README.md), printed as the same JSON array.

    python tests/tests/report_duckdb.py RUN_DIR [REPORT_DIR]

Prints {"numbers": [...]}; with REPORT_DIR also "files": the row counts of the report's
report.csv and report.json as DuckDB and Polars load them.
"""
import glob
import json
import os
import re
import statistics
import sys

import duckdb

STAGES = ["challenge", "filter", "rollout", "score", "update", "eval"]
STAGE_FOLDERS = {
    "challenge": ["challenger"],
    "filter": ["tasks"],
    "rollout": ["rollouts"],
    "score": ["scored"],
    "update": ["update"],
    "eval": ["eval", "eval-checkpoint"],
}
GENERATION = ["challenge", "rollout", "eval"]
RATES = {
    "challenge": ("new_tokens", "generation_seconds"),
    "rollout": ("new_tokens", "generation_seconds"),
    "update": ("tokens", "train_seconds"),
    "eval": ("new_tokens", "generation_seconds"),
}


def iterations(run):
    its = []
    for d in os.listdir(run):
        m = re.fullmatch(r"iter-(\d+)", d)
        if m and os.path.isdir(os.path.join(run, d)):
            its.append(int(m.group(1)))
    return sorted(its)


def manifests(folder):
    return sorted(glob.glob(os.path.join(folder, "_manifest*.json")))


def complete(folder):
    """Every part of the folder has its manifest (the rule the stages commit by)."""
    files = manifests(folder)
    if not files:
        return False
    shards = [json.load(open(f))["shard"] for f in files]
    count = shards[0]["count"]
    return {s["index"] for s in shards if s["count"] == count} == set(range(count))


def shard_list(run, folder):
    files = []
    for it in iterations(run):
        d = os.path.join(run, f"iter-{it:04d}", folder)
        if complete(d):
            listed = [o["file"] for m in manifests(d) for o in json.load(open(m))["outputs"]]
            files += sorted(os.path.join(d, f) for f in listed if f.startswith("part-") and f.endswith(".parquet"))
    return files


def view(con, run, folder, name):
    """A view of the folder's committed shards with an `iter` column from the path."""
    files = shard_list(run, folder)
    if not files:
        return False
    con.execute(
        f"CREATE OR REPLACE VIEW {name} AS SELECT *, "
        f"CAST(regexp_extract(filename, 'iter-([0-9]+)/', 1) AS INTEGER) AS iter "
        f"FROM read_parquet({files!r}, filename = true)"
    )
    return True


# z of a two-sided 95% interval, from the normal quantile (not the report's constant).
Z95 = statistics.NormalDist().inv_cdf(0.975)

# The Wilson score interval of k successes in n trials, in its (k + z²/2) / (n + z²) form
# (the report writes it with p̂): NULL for n = 0.
WILSON = """
CREATE OR REPLACE MACRO wilson_mid(k, n) AS (k::DOUBLE + {z2} / 2) / (n::DOUBLE + {z2});
CREATE OR REPLACE MACRO wilson_half(k, n) AS
    {z} * sqrt(n::DOUBLE) / (n::DOUBLE + {z2})
        * sqrt((k::DOUBLE / n) * (1 - k::DOUBLE / n) + {z2} / (4 * n::DOUBLE));
CREATE OR REPLACE MACRO wilson_lo(k, n) AS
    CASE WHEN n > 0 THEN greatest(0.0, wilson_mid(k, n) - wilson_half(k, n)) END;
CREATE OR REPLACE MACRO wilson_hi(k, n) AS
    CASE WHEN n > 0 THEN least(1.0, wilson_mid(k, n) + wilson_half(k, n)) END;
""".format(z=repr(Z95), z2=repr(Z95 * Z95))


def main():
    run = sys.argv[1]
    con = duckdb.connect()
    con.execute(WILSON)
    its = iterations(run)
    out = {it: {"iteration": it} for it in its}

    def put(sql, keys):
        for row in con.execute(sql).fetchall():
            for k, v in zip(keys, row[1:]):
                out[row[0]][k] = v

    def zero(folder, keys):
        for it in its:
            if complete(os.path.join(run, f"iter-{it:04d}", folder)):
                for k in keys:
                    out[it][k] = 0

    zero("challenger", ["documents", "attempts"])
    if view(con, run, "challenger", "challenger"):
        put(
            "SELECT iter, count(DISTINCT doc_slot), count(*), avg(len(completion_ids)) FROM challenger GROUP BY iter",
            ["documents", "attempts", "challenger_completion_tokens"],
        )
    zero("tasks", ["valid_tasks", "mcq_attempts", "mcq_valid", "free_form_attempts", "free_form_valid", "distinct_questions"])
    for it in its:
        out[it]["invalid_reasons"] = {}
    if view(con, run, "tasks", "tasks"):
        put(
            """SELECT iter,
                 count(*) FILTER (WHERE valid),
                 avg(CASE WHEN valid THEN 1.0 ELSE 0.0 END),
                 wilson_lo(count(*) FILTER (WHERE valid), count(*)),
                 wilson_hi(count(*) FILTER (WHERE valid), count(*)),
                 count(*) FILTER (WHERE task_kind = 'mcq'),
                 count(*) FILTER (WHERE task_kind = 'mcq' AND valid),
                 count(*) FILTER (WHERE task_kind = 'free_form'),
                 count(*) FILTER (WHERE task_kind = 'free_form' AND valid)
               FROM tasks GROUP BY iter""",
            ["valid_tasks", "valid_task_rate", "valid_task_rate_lo", "valid_task_rate_hi", "mcq_attempts", "mcq_valid", "free_form_attempts", "free_form_valid"],
        )
        for it, reason, n in con.execute(
            "SELECT iter, coalesce(invalid_reason, '(none)'), count(*) FROM tasks WHERE NOT valid GROUP BY ALL"
        ).fetchall():
            out[it]["invalid_reasons"][reason] = n
        con.execute(
            r"""CREATE OR REPLACE TABLE questions AS
                SELECT iter, row_number() OVER () AS id,
                       regexp_extract_all(lower(question), '[\p{L}\p{N}]+') AS w
                FROM tasks WHERE valid"""
        )
        con.execute(
            """CREATE OR REPLACE TABLE grams AS
               SELECT iter, id, coalesce(array_to_string(w, ' '), '') AS words,
                 CASE WHEN len(w) = 0 THEN []::VARCHAR[]
                      WHEN len(w) < 3 THEN [array_to_string(w, ' ')]
                      ELSE list_distinct(list_transform(range(1, len(w) - 1),
                                                        i -> array_to_string(w[i:i + 2], ' ')))
                 END AS g
               FROM questions"""
        )
        put("SELECT iter, count(DISTINCT words) FROM grams GROUP BY iter", ["distinct_questions"])
        put(
            """SELECT a.iter, avg(CASE WHEN len(list_distinct(list_concat(a.g, b.g))) = 0 THEN 0.0
                  ELSE len(list_intersect(a.g, b.g)) / len(list_distinct(list_concat(a.g, b.g))) END)
               FROM grams a JOIN grams b ON a.iter = b.iter AND a.id < b.id GROUP BY a.iter""",
            ["question_overlap"],
        )
    if view(con, run, "rollouts", "rollouts"):
        put("SELECT iter, avg(len(completion_ids)) FROM rollouts GROUP BY iter", ["reasoner_completion_tokens"])
    zero("scored", ["answered_tasks", "reasoner_answers", "challenger_groups", "reasoner_groups"])
    if view(con, run, "scored", "scored"):
        put(
            """SELECT iter, count(*), avg(correct::INTEGER),
                      wilson_lo(count(*) FILTER (WHERE correct), count(correct)),
                      wilson_hi(count(*) FILTER (WHERE correct), count(correct))
               FROM scored WHERE role = 'reasoner' GROUP BY iter""",
            ["reasoner_answers", "reasoner_accuracy", "reasoner_accuracy_lo", "reasoner_accuracy_hi"],
        )
        # Groups of the training batch (in_batch rows by role and group_id) whose advantages
        # are all exactly 0.
        for it, role, groups, share in con.execute(
            """WITH g AS (SELECT iter, role, group_id, bool_and(abs(advantage) = 0) AS zero
                         FROM scored WHERE in_batch GROUP BY ALL)
               SELECT iter, role, count(*), avg(zero::INTEGER) FROM g GROUP BY ALL"""
        ).fetchall():
            out[it][f"{role}_groups"] = groups
            out[it][f"{role}_zero_advantage_share"] = share
        put(
            """WITH t AS (SELECT iter, task_id, avg(correct::INTEGER) AS p FROM scored
                          WHERE role = 'reasoner' GROUP BY iter, task_id)
               SELECT iter, count(*), avg(p),
                      avg(CASE WHEN p = 0 THEN 1.0 ELSE 0.0 END),
                      avg(CASE WHEN p > 0 AND p < 1 THEN 1.0 ELSE 0.0 END),
                      avg(CASE WHEN p = 1 THEN 1.0 ELSE 0.0 END)
               FROM t GROUP BY iter""",
            ["answered_tasks", "mean_pass_rate", "pass_rate_zero_share", "pass_rate_mid_share", "pass_rate_one_share"],
        )
        put(
            "SELECT iter, avg(reward::DOUBLE) FROM scored WHERE role = 'challenger' AND in_batch GROUP BY iter",
            ["mean_challenger_reward"],
        )
    zero("update", ["update_steps"])
    if view(con, run, "update", "updates"):
        put(
            """SELECT iter, count(*), avg(loss), arg_max(grad_norm, epoch::BIGINT * 4294967296 + step),
                      max(peak_rss_mib)
               FROM updates GROUP BY iter""",
            ["update_steps", "loss", "grad_norm", "update_peak_rss_mib"],
        )
    for folder, key in [("eval", "eval_before"), ("eval-checkpoint", "eval_after")]:
        maps = [key, f"{key}_answers", f"{key}_lo", f"{key}_hi"]
        for it in its:
            for m in maps:
                out[it][m] = {}
        if view(con, run, folder, "evals"):
            for it, bench, *values in con.execute(
                """SELECT iter, benchmark, avg(correct::INTEGER), count(*),
                          wilson_lo(count(*) FILTER (WHERE correct), count(*)),
                          wilson_hi(count(*) FILTER (WHERE correct), count(*))
                   FROM evals GROUP BY ALL"""
            ).fetchall():
                for m, v in zip(maps, values):
                    out[it][m][bench] = v

    # Time and throughput: the manifests, read as JSON by DuckDB.
    for it in its:
        minutes, rates, peaks = {}, {}, {}
        for stage in STAGES:
            files = []
            for folder in STAGE_FOLDERS[stage]:
                d = os.path.join(run, f"iter-{it:04d}", folder)
                if complete(d):
                    files += manifests(d)
            if not files:
                minutes[stage], rates[stage] = None, None
                continue
            con.execute(
                f"CREATE OR REPLACE VIEW m AS SELECT * FROM read_json_auto({files!r}, union_by_name = true, "
                f"maximum_object_size = 100000000)"
            )
            minutes[stage] = con.execute("SELECT sum(seconds) / 60 FROM m").fetchone()[0]
            if stage in RATES:
                tokens, seconds = RATES[stage]
                s, t = con.execute(
                    f"SELECT sum(TRY_CAST(json_extract(to_json(metrics), '$.{seconds}') AS DOUBLE)), "
                    f"sum(TRY_CAST(json_extract(to_json(metrics), '$.{tokens}') AS DOUBLE)) FROM m"
                ).fetchone()
                rates[stage] = t / s if s else None
            else:
                rates[stage] = None
            if stage in GENERATION:
                (peak,) = con.execute(
                    "SELECT max(r) FILTER (WHERE r > 0) FROM (SELECT TRY_CAST(json_extract(to_json(metrics), "
                    "'$.peak_rss_mib') AS DOUBLE) AS r FROM m)"
                ).fetchone()
                peaks[stage] = peak
        out[it]["minutes"] = minutes
        out[it]["tokens_per_second"] = rates
        out[it]["peak_rss_mib"] = {s: peaks.get(s) for s in STAGES}
        # The update's share of its measured GEMM peak (none recorded by older updates).
        out[it]["update_peak_fraction"] = None
        d = os.path.join(run, f"iter-{it:04d}", "update")
        if complete(d):
            con.execute(
                f"CREATE OR REPLACE VIEW m AS SELECT * FROM read_json_auto({manifests(d)!r}, "
                f"union_by_name = true, maximum_object_size = 100000000)"
            )
            g, share = con.execute(
                "SELECT TRY_CAST(json_extract(to_json(metrics), '$.model_gflops_per_second') AS DOUBLE), "
                "TRY_CAST(json_extract(to_json(metrics), '$.peak_fraction') AS DOUBLE) FROM m"
            ).fetchone()
            out[it]["update_peak_fraction"] = share if g else None
        present = [v for v in minutes.values() if v is not None]
        out[it]["minutes_total"] = sum(present) if present else None
    result = {"numbers": [out[it] for it in its]}
    if len(sys.argv) > 2:
        import polars as pl

        rep = sys.argv[2]
        csv_rows = con.execute(f"SELECT count(*) FROM read_csv_auto('{rep}/report.csv')").fetchone()[0]
        json_rows = con.execute(f"SELECT count(*) FROM read_json_auto('{rep}/report.json')").fetchone()[0]
        pl_csv = pl.read_csv(f"{rep}/report.csv")
        pl_json = pl.read_json(f"{rep}/report.json")
        result["files"] = {
            "duckdb_csv_rows": csv_rows,
            "duckdb_json_rows": json_rows,
            "polars_csv_rows": pl_csv.height,
            "polars_json_rows": pl_json.height,
            "polars_csv_iterations": pl_csv["iteration"].to_list(),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
