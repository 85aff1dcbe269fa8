"""cadenza-sample ckpt_path=... [mode=prior|reconstruct|interpolate] n=8 out_dir=... + controls

mode=prior (every family): n new pieces; temperature / top_k / top_p / seed / steps|bars /
primer (lstm); attribute=density:+1.5 (vae) shifts every code along an attribute vector.
mode=reconstruct input=a.mid (vae): the first window of a.mid through the latent and back.
mode=interpolate a=x.mid b=y.mid steps=8 (vae): the latent path as MIDI files + one sheet;
  on a gan (no encoder), steps=8 phrases on the path between two random latents (seed).
condition=melody.mid (track-conditional gan): accompaniment for the melody, one track each.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from cadenza.cli import CONFIG_DIR, run_task
from cadenza.errors import ConfigError
from cadenza.training.config import require

MODES = ("prior", "reconstruct", "interpolate")


def sample(cfg: DictConfig) -> list[str]:
    from cadenza import explore
    from cadenza.generate import generate_to_files
    from cadenza.models import GenerativeModule

    controls = OmegaConf.to_container(cfg, resolve=True)
    mode = controls.pop("mode", "prior")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
    model = GenerativeModule.load(require(cfg, "ckpt_path"))
    if model.codec.kind == "features" and (mode != "prior" or controls.get("attribute")):
        raise ConfigError(
            f"a {model.family} checkpoint samples audio from its prior only (mode=prior); "
            f"mode={mode} and attribute= work on MIDI families"
        )
    controls.pop("ckpt_path")
    attribute = controls.pop("attribute", None)
    inputs = {k: controls.pop(k, None) for k in ("input", "a", "b")}
    common = {k: controls[k] for k in ("out_dir", "seed", "png")}
    if mode == "reconstruct":
        path = inputs["input"] or _missing("input", "mode=reconstruct input=phrase.mid")
        # Greedy decoding gives one answer; n variations need a temperature.
        n = controls["n"] if controls["temperature"] is not None else 1
        paths = explore.reconstruct_to_files(
            model, path, n=n, temperature=controls["temperature"], attribute=attribute, **common
        )
    elif mode == "interpolate" and model.family == "gan":
        paths = explore.latent_walk_to_files(
            model, steps=controls["steps"] or 8, temperature=controls["temperature"], **common
        )
    elif mode == "interpolate":
        a = inputs["a"] or _missing("a", "mode=interpolate a=x.mid b=y.mid steps=8")
        b = inputs["b"] or _missing("b", "mode=interpolate a=x.mid b=y.mid steps=8")
        paths = explore.interpolate_to_files(
            model, a, b, steps=controls["steps"] or 8, temperature=controls["temperature"],
            **common,
        )  # fmt: skip
    elif attribute:
        temperature = 1.0 if controls["temperature"] is None else controls["temperature"]
        paths, change = explore.prior_with_attribute_to_files(
            model, attribute, n=controls["n"], temperature=temperature,
            prefix=controls["prefix"], **common,
        )  # fmt: skip
        print(
            f"{change['attribute']}: {change['before']} -> {change['after']} {change['unit']} "
            f"(change {change['change']:+}, asked {change['asked']:+} along the attribute vector)"
        )
    else:
        paths = generate_to_files(model, **controls)
    for p in paths:
        print(p)
    return [str(p) for p in paths]


def _missing(key: str, example: str) -> str:
    raise ConfigError(f"{key}=... is required: {example}")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sample")
def main(cfg: DictConfig) -> None:
    run_task(sample, cfg)


if __name__ == "__main__":
    main()
