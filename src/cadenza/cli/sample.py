"""cadenza-sample ckpt_path=... [mode=prior|reconstruct|interpolate] n=8 out_dir=... + controls

mode=prior (every family that samples new pieces): n new pieces; temperature / top_k / top_p /
seed / steps|bars / primer= (continuation) / condition= (a melody to accompany) as the family
declares them; attribute=density:+1.5 shifts every code along an attribute vector.
mode=reconstruct input=a.mid: the first window of a.mid through the latent and back.
mode=interpolate a=x.mid b=y.mid steps=8: the latent path as files + one sheet; a family with no
  encoder (a gan) walks between two random latents (seed) instead.
device=cuda samples on a GPU (device=auto: one when visible); the default is the CPU.
What a checkpoint can do is its family's declaration; asking for anything else says what it can.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from cadenza.cli import CONFIG_DIR, run_task
from cadenza.cli.typos import names_typos
from cadenza.errors import BadFileError, ConfigError
from cadenza.training.config import require

log = logging.getLogger("cadenza.sample")
MODES = ("prior", "reconstruct", "interpolate")
FILE_KEYS = ("render", "synth", "soundfont", "sample_rate", "tempo")  # how files are written


def sample(cfg: DictConfig) -> list[str]:
    from cadenza.generation import check_tempo
    from cadenza.models import GenerativeModule
    from cadenza.models.sampling import pick_device

    controls = OmegaConf.to_container(cfg, resolve=True)
    _refuse_appended(controls)
    mode = controls.pop("mode", "prior")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
    device = pick_device(controls.pop("device", "cpu"))  # before the checkpoint is read
    model = GenerativeModule.load(require(cfg, "ckpt_path")).to(device)
    controls.pop("ckpt_path")
    attribute = controls.pop("attribute", None)
    inputs = {k: controls.pop(k, None) for k in ("input", "a", "b")}
    out_dir, png = controls.pop("out_dir"), controls.pop("png")
    audio = {k: controls.pop(k) for k in FILE_KEYS}
    check_tempo(audio["tempo"], model.codec.output)  # before any sampling
    typed = _typed()
    for line in unused_length(model, mode, controls, typed):
        log.warning(line)
    common: dict[str, Any] = {"seed": controls["seed"]}
    if "prefix" in typed:  # the files' stem; each exploration has its own default
        common["prefix"] = controls["prefix"]
    try:
        pieces = _explore_or_sample(model, mode, controls, inputs, attribute, typed, out_dir, png,
                                    audio, common)  # fmt: skip
    except BadFileError as e:  # the file a key named: say which key
        given = {**inputs, "primer": controls.get("primer"), "condition": controls.get("condition")}
        key = next((k for k, v in given.items() if v is not None and str(v) == e.path), None)
        if key is None:
            raise
        raise ConfigError(f"{key}={e}") from None
    paths = [str(p.files.get("midi") or p.files["audio"]) for p in pieces]
    for piece, path in zip(pieces, paths, strict=True):
        print(path)  # one file a line: the MIDI, then the audio rendered from it (render=)
        if "midi" in piece.files and "audio" in piece.files:
            print(piece.files["audio"])
    return paths


def _explore_or_sample(model: Any, mode: str, controls: dict[str, Any], inputs: dict[str, Any],
                       attribute: str | None, typed: set[str], out_dir: str,
                       png: bool, audio: dict, common: dict[str, Any]) -> Any:  # fmt: skip
    """The pieces of `mode`, written to `out_dir`."""
    from cadenza.generation import exploration, generate_to_files
    from cadenza.models import Ability

    if mode == "reconstruct":
        path = inputs["input"] or _missing("input", "mode=reconstruct input=phrase.mid")
        # Greedy decoding gives one answer; n variations need a temperature.
        n = controls["n"] if controls["temperature"] is not None else 1
        if n != controls["n"] and "n" in typed:
            log.warning("n=%d: a reconstruction without temperature= is greedy, one answer; "
                        "give temperature=0.8 (say) for %d variations", controls["n"],
                        controls["n"])  # fmt: skip
        return exploration.reconstruct_to_files(
            model, path, out_dir, png, audio, n=n, temperature=controls["temperature"],
            attribute=attribute, **common,
        )  # fmt: skip
    if mode == "interpolate" and _walks(model):
        given = [k for k in ("a", "b") if inputs[k] is not None]
        if given:  # as the service says it
            raise ConfigError(
                f"{' and '.join(f'{k}=' for k in given)}: the {model.family} model has no encoder; "
                f"mode=interpolate walks between two random latents drawn from seed= (leave "
                f"a= and b= out)"
            )
        return exploration.latent_walk_to_files(
            model, out_dir, png, audio, steps=controls["steps"] or 8,
            temperature=controls["temperature"], **common,
        )  # fmt: skip
    if mode == "interpolate":
        model.require(Ability.INTERPOLATE)
        a = inputs["a"] or _missing("a", "mode=interpolate a=x.mid b=y.mid steps=8")
        b = inputs["b"] or _missing("b", "mode=interpolate a=x.mid b=y.mid steps=8")
        return exploration.interpolate_to_files(
            model, a, b, out_dir, png, audio, steps=controls["steps"] or 8,
            temperature=controls["temperature"], **common,
        )  # fmt: skip
    if attribute:
        temperature = 1.0 if controls["temperature"] is None else controls["temperature"]
        pieces, change = exploration.prior_with_attribute_to_files(
            model, attribute, out_dir, png, audio, n=controls["n"], temperature=temperature,
            **{"prefix": controls["prefix"], **common},
        )  # fmt: skip
        print(
            f"{change['attribute']}: {change['before']} -> {change['after']} {change['unit']} "
            f"(change {change['change']:+}, asked {change['asked']:+} along the attribute vector)"
        )
        return pieces
    return generate_to_files(model, out_dir, png=png, **audio, **controls)


def unused_length(model: Any, mode: str, controls: dict[str, Any], typed: set[str]) -> list[str]:
    """What a typed `bars=`/`steps=` will not do here, said before sampling: the default length
    (bars=8) is silent, so a producer who asked for 16 bars and got a VAE's 2 learns why."""
    window = model.declaration().window_steps
    asked = [f"{k}={controls[k]}" for k in ("bars", "steps") if k in typed]
    if mode == "interpolate":
        asked = [a for a in asked if not a.startswith("steps=")]  # steps: points on the path
    if not asked:
        return []
    given = " and ".join(asked)
    if mode == "interpolate" and _walks(model):  # a walk has no input to be as long as
        return [f"{given}: the {model.family} model's walk writes phrases of its own length; "
                f"length is ignored"]  # fmt: skip
    if mode != "prior":
        return [f"{given}: mode={mode} writes windows as long as its input's; length is ignored"]
    if window is not None:
        return [f"{given}: the {model.family} model writes windows of its own length ({window} "
                f"steps); length is ignored"]  # fmt: skip
    if controls.get("condition") is not None and "bars" in typed:
        return ["bars: an accompaniment is as long as its melody; steps= cuts it shorter"]
    return []


def _walks(model: Any) -> bool:
    """mode=interpolate is a walk between random latents: a family with no encoder (a gan)."""
    from cadenza.models import Ability

    return not model.can(Ability.INTERPOLATE) and model.can(Ability.LATENT_WALK)


def _refuse_appended(controls: dict[str, Any]) -> None:
    """Every setting is in the config, so a key appended with `+` (Hydra's advice for a key it
    does not know) is a typo: named with the nearest setting, before the checkpoint loads."""
    import difflib

    appended = {k for k in _typed("+") if k in controls}
    for key in sorted(appended):
        near = difflib.get_close_matches(key, [k for k in controls if k not in appended], n=1)
        hint = f": did you mean {near[0]}={controls[key]}?" if near else ""
        raise ConfigError(f"+{key}: cadenza-sample has no setting {key}{hint}")


def _typed(prefix: str = "") -> set[str]:
    """The keys given on the command line (a default and a typed value look alike in cfg);
    `prefix="+"`: those appended."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task
            if o.startswith(prefix)}  # fmt: skip


def _missing(key: str, example: str) -> str:
    raise ConfigError(f"{key}=... is required: {example}")


@names_typos("sample")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sample")
def main(cfg: DictConfig) -> None:
    run_task(sample, cfg)


if __name__ == "__main__":
    main()
