"""cadenza-train experiment=bach_lstm [trainer=ddp] [ckpt_path=...] [-m sweeps]"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cadenza.cli import CONFIG_DIR, run_task
from cadenza.cli.typos import names_typos
from cadenza.training.loop import train


@names_typos("train")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    result = run_task(train, cfg)
    # Returned for Hydra sweepers (hparams_search): the value to minimise, at the run's best
    # epoch where its checkpoints select on that metric.
    metric = cfg.get("optimized_metric")
    if not metric or not result:
        return None
    return result["best"].get(metric, result["metrics"].get(metric))


if __name__ == "__main__":
    main()
