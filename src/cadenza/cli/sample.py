"""cadenza-sample ckpt_path=... n=8 out_dir=... [temperature top_k top_p seed steps|bars primer]"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from cadenza.cli import CONFIG_DIR, run_task
from cadenza.training.config import require


def sample(cfg: DictConfig) -> list[str]:
    from cadenza.generate import generate_to_files
    from cadenza.models import GenerativeModule

    model = GenerativeModule.load(require(cfg, "ckpt_path"))
    controls = OmegaConf.to_container(cfg, resolve=True)
    controls.pop("ckpt_path")
    paths = generate_to_files(model, **controls)
    for p in paths:
        print(p)
    return [str(p) for p in paths]


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sample")
def main(cfg: DictConfig) -> None:
    run_task(sample, cfg)


if __name__ == "__main__":
    main()
