"""cadenza-prepare data=midi_folder data.root=/any/folder: encode and cache a dataset once."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cadenza.cli import CONFIG_DIR, run_task
from cadenza.training.config import instantiate


def prepare(cfg: DictConfig) -> str:
    from cadenza.data.prepare import prepare as prepare_dataset

    dm = instantiate(cfg.data)
    prepared = prepare_dataset(
        dm.source, dm.codec, dm.cache_dir, workers=dm.prepare_workers,
        valid_fraction=dm.valid_fraction, test_fraction=dm.test_fraction,
        force=bool(cfg.get("force", False)),
    )
    summary = prepared.summary()
    print(summary)
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
def main(cfg: DictConfig) -> None:
    run_task(prepare, cfg)


if __name__ == "__main__":
    main()
