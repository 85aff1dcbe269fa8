"""A sweep's results in one table: every job writes `result.json` in its output folder (the
overrides it ran with, its best epoch's score on each monitored metric, its test metrics and
checkpoints); when the sweep ends, `summary.csv` in the sweep's folder lists them, the best
first by the metric the sweep minimises (`optimized_metric`, else `val/nll`).

A Hydra callback (configs/hydra/default.yaml): `on_multirun_end` runs in the process that
launched the sweep, after its last job, locally and for SLURM jobs (the submitit launcher waits
for them). Jobs that failed wrote no result and are listed as such.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cadenza.atomic import write_atomically

log = logging.getLogger("cadenza")
RESULT = "result.json"
SUMMARY = "summary.csv"


def write_result(output_dir: str | Path | None, result: dict[str, Any],
                 overrides: list[str] | None) -> Path | None:  # fmt: skip
    """One run's `result.json` (its output folder's): what a sweep's summary reads."""
    if not output_dir or not Path(output_dir).is_dir():
        return None
    keep = ("metrics", "best", "best_ckpt", "last_ckpt", "latest_ckpt")
    record = {"overrides": overrides, **{k: result[k] for k in keep if k in result}}
    path = Path(output_dir) / RESULT
    write_atomically(path, json.dumps(record, indent=1, default=str))
    return path


def summarise(sweep_dir: Path, metric: str = "val/nll") -> list[dict[str, Any]]:
    """Rows of `summary.csv` for the jobs under `sweep_dir` (<job number>/result.json), the
    best first by `metric` (its best epoch's score, else its last value); jobs without a
    result (failed, or still running) last. Written to sweep_dir/summary.csv."""
    rows = []
    for job in sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
                      key=lambda p: int(p.name)):  # fmt: skip
        try:
            record = json.loads((job / RESULT).read_text())
        except (OSError, ValueError):
            rows.append({"job": int(job.name), "status": "no result (failed?)", metric: None})
            continue
        best, metrics = record.get("best") or {}, record.get("metrics") or {}
        score = best.get(metric, metrics.get(metric))
        row = {"job": int(job.name), "status": "done", metric: score,
               "overrides": " ".join(record.get("overrides") or [])}  # fmt: skip
        row |= {k: v for k, v in sorted(metrics.items()) if k.startswith("test/")}
        row["best_ckpt"] = record.get("best_ckpt") or record.get("last_ckpt")
        rows.append(row)

    def order(row: dict[str, Any]) -> tuple[bool, float]:
        value = row.get(metric)
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return missing, math.inf if missing else float(value)

    rows.sort(key=order)
    if rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with (sweep_dir / SUMMARY).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    return rows


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        if not sweep_dir.is_dir():
            return  # jobs of several names write under their own names' folders
        metric = OmegaConf.select(config, "optimized_metric", default=None) or "val/nll"
        rows = summarise(sweep_dir, metric)
        if rows:
            best = rows[0]
            log.info("sweep: %d job(s), the best by %s is job %s (%s): %s", len(rows), metric,
                     best["job"], best.get(metric), sweep_dir / SUMMARY)  # fmt: skip
