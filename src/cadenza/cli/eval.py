"""cadenza-eval ckpt_path=... data=boulanger data.name=jsb split=test: NLL of a checkpoint.

The codec comes from the checkpoint, so the data is encoded exactly as the model was trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from cadenza.cli import CONFIG_DIR, run_task
from cadenza.errors import ConfigError
from cadenza.training.config import instantiate, require


def evaluate(cfg: DictConfig) -> dict[str, float]:
    import pytorch_lightning as pl

    from cadenza.models import GenerativeModule

    model = GenerativeModule.load(require(cfg, "ckpt_path"))
    split = cfg.get("split", "test")
    if split not in ("valid", "test"):
        raise ConfigError(f"split must be 'valid' or 'test', got {split!r}")
    with open_dict(cfg):
        cfg.data.codec = {
            "_target_": "cadenza.representations.base.Codec.from_dict",
            "d": model.codec.to_dict(),
        }
    datamodule = instantiate(cfg.data)
    trainer = pl.Trainer(
        accelerator=cfg.get("accelerator", "cpu"),
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    run = trainer.test if split == "test" else trainer.validate
    metrics = {k: float(v) for k, v in run(model, datamodule=datamodule, verbose=False)[0].items()}
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"ckpt_path": str(cfg.ckpt_path), "split": split, "metrics": metrics}
    out.write_text(json.dumps(report, indent=2))
    width = max(len(k) for k in metrics)
    for k, v in metrics.items():
        print(f"{k:<{width}}  {v:.4f}")
    print(f"wrote {out}")
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    run_task(evaluate, cfg)


if __name__ == "__main__":
    main()
