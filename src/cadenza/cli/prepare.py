"""cadenza-prepare data=midi_folder data.root=/any/folder: encode and cache a dataset once."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cadenza.cli import CONFIG_DIR, run_task
from cadenza.cli.typos import names_typos
from cadenza.training.config import instantiate


def prepare(cfg: DictConfig) -> str:
    datamodule = instantiate(cfg.data)
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
