"""cadenza-classify ckpt=CLASSIFIER.ckpt input=FILE_OR_FOLDER [top=3] [out=classify.json]

Every MIDI file of `input` (a file, or a folder searched recursively; audio files for a
classifier trained on mel features, e.g. experiment=styles_mel_classifier) -> its classes with
probabilities, printed (the `top` most likely) and written as JSON to `out`. A corrupt, empty
or unreadable file is reported, listed under "skipped" with its reason, and the rest go on.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from cadenza.cli import CONFIG_DIR, checkpoint_arg, run_task
from cadenza.cli.typos import names_typos
from cadenza.errors import BadFileError, ConfigError
from cadenza.models.base import check_int
from cadenza.training.config import require


def classify(cfg: DictConfig) -> dict:
    from cadenza.metrics.music_eval import write_report
    from cadenza.models import ClassifierModule

    given = checkpoint_arg(cfg, "classifier")  # before to_container: ckpt_path= fills ckpt
    c = OmegaConf.to_container(cfg, resolve=True)
    model = ClassifierModule.load(given)
    top = check_int("top", c["top"])
    target = Path(str(require(cfg, "input"))).expanduser()
    if not target.exists():
        raise ConfigError(f"input={target} is neither a file nor a folder")
    files = model.input_files(target, "input")
    classes, pieces, skipped = model.classes, [], []
    for path in files:
        try:
            ranked = model.ranked(model.read_piece(path))
        except BadFileError as e:
            print(f"skipped {path}: {e}")
            skipped.append({"file": str(path), "reason": str(e)})
            continue
        pieces.append({"file": str(path), "label": ranked[0][0],
                       "probabilities": dict(ranked)})  # fmt: skip
        shown = ", ".join(f"{name} {prob:.3f}" for name, prob in ranked[:top])
        print(f"{path}: {shown}")
    report = {"checkpoint": str(c["ckpt"]), "classes": classes, "pieces": pieces,
              "skipped": skipped}  # fmt: skip
    out = write_report(report, c["out"])
    print(f"{len(pieces)} classified, {len(skipped)} skipped -> {out}")
    return report


@names_typos("classify")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="classify")
def main(cfg: DictConfig) -> None:
    run_task(classify, cfg)


if __name__ == "__main__":
    main()
