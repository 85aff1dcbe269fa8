"""cadenza-prepare data=midi_folder data.root=/any/folder: encode and cache a dataset once."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cadenza.cli import CONFIG_DIR, run_task
from cadenza.cli.typos import names_typos
from cadenza.errors import ConfigError
from cadenza.training.config import instantiate, job_suffix


def prepare(cfg: DictConfig) -> str:
    if job_suffix():  # a run of a sweep
        # The training job's own overrides, less its search: one dataset, prepared once.
        raise ConfigError("cadenza-prepare prepares one dataset: leave out -m and "
                          "hparams_search (each run of the sweep reads one cache)")  # fmt: skip
    datamodule = instantiate(cfg.data)
    if not hasattr(datamodule, "prepare_cache"):
        raise ConfigError("this data is listening histories, which have no cache to prepare: "
                          "cadenza-train reads them as it starts")  # fmt: skip
    prepared = datamodule.prepare_cache(force=bool(cfg.get("force", False)))
    # The one-line summary is logged by prepare(); here, which files were skipped and why.
    report = prepared.skipped_report()
    if report:
        print(report)
    return prepared.summary()


@names_typos("prepare")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
def main(cfg: DictConfig) -> None:
    run_task(prepare, cfg)


if __name__ == "__main__":
    main()
