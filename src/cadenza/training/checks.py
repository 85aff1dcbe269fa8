"""Values Lightning and torch check late, checked when a run starts.

Lightning asserts `max_epochs` is an int only when the fit loop begins (a bare AssertionError),
EarlyStopping compares `patience` at the first epoch that does not improve (a TypeError, hours
in), torch rejects a negative learning rate when the optimizer is built after the data is
prepared, and the pieces written after training read `sample.*` only then. Each of these is
checked here first, before any data is prepared, so a typo in an override fails at start-up and
names its key.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cadenza.errors import ConfigError
from cadenza.generation.controls import check_sample_controls
from cadenza.models.base import check_float, check_int

log = logging.getLogger("cadenza")

# trainer.<key>: the smallest integer Lightning takes (-1: no limit).
TRAINER_INTS = {
    "max_epochs": -1, "min_epochs": 0, "max_steps": -1, "min_steps": 0, "num_nodes": 1,
    "log_every_n_steps": 1, "check_val_every_n_epoch": 1, "accumulate_grad_batches": 1,
    "num_sanity_val_steps": -1,
}  # fmt: skip
TRAINER_FLOATS = ("gradient_clip_val",)  # >= 0
# An integer counts batches; a float in [0, 1] is a fraction of an epoch's batches.
TRAINER_BATCHES = ("limit_train_batches", "limit_val_batches", "limit_test_batches",
                   "limit_predict_batches", "val_check_interval", "overfit_batches")  # fmt: skip
# callbacks.<name>.<key>: ModelCheckpoint's and EarlyStopping's integers.
CALLBACK_INTS = {"patience": 0, "save_top_k": -1, "every_n_epochs": 0, "every_n_train_steps": 0}
MAX_TIME = re.compile(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}")  # trainer.max_time, DD:HH:MM:SS
TIMEDELTA_KEYS = {"weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds"}
OPTIMIZER_FLOATS = ("lr", "weight_decay", "eps", "momentum")  # torch: each >= 0


def check_run_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value the run would fail on later."""
    trainer = cfg.get("trainer") or {}
    for key, minimum in TRAINER_INTS.items():
        if trainer.get(key) is not None:
            check_int(f"trainer.{key}", trainer[key], minimum=minimum)
    for key in TRAINER_FLOATS:
        if trainer.get(key) is not None:
            check_float(f"trainer.{key}", trainer[key])
    for key in TRAINER_BATCHES:
        if trainer.get(key) is not None:
            _check_batches(f"trainer.{key}", trainer[key])
    if trainer.get("max_time") is not None:
        _check_max_time(trainer.max_time)
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        for key, minimum in CALLBACK_INTS.items():
            if node.get(key) is not None:
                check_int(f"callbacks.{name}.{key}", node[key], minimum=minimum)
        if node.get("min_delta") is not None:
            check_float(f"callbacks.{name}.min_delta", node.min_delta, minimum=-float("inf"))
        if node.get("mode") is not None and node.mode not in ("min", "max"):
            raise ConfigError(f"callbacks.{name}.mode must be min or max, got {node.mode!r}")
    optimizer = OmegaConf.select(cfg, "model.optimizer")
    if isinstance(optimizer, DictConfig):
        for key in OPTIMIZER_FLOATS:
            if optimizer.get(key) is not None:
                check_float(f"model.optimizer.{key}", optimizer[key])
    if cfg.get("sample") is not None:
        check_sample_controls(cfg.sample)


def check_sample_abilities(model: Any, sample: Any) -> None:
    """`sample.*` asks the trained model only for what its family can do (top-k on a piano-roll
    model would otherwise fail after training, with nothing written)."""
    from cadenza.models.base import Ability, GenerativeModule

    if not isinstance(model, GenerativeModule) or not sample or not sample.get("n"):
        return
    wanted = {Ability.TOKEN_FILTERS: sample.get("top_k") is not None
              or sample.get("top_p") is not None,
              Ability.STYLE: sample.get("style") is not None,
              Ability.CONTINUE: sample.get("primer") is not None,
              Ability.CONDITION: sample.get("condition") is not None}  # fmt: skip
    try:
        for ability in (a for a, asked in wanted.items() if asked):
            model.require(ability)
        if sample.get("tempo") is not None:
            from cadenza.generation.writers import check_tempo

            check_tempo(sample.tempo, model.codec.output)
    except ConfigError as e:
        raise ConfigError(f"sample: {e}") from None


def check_steps(model: Any, stages: list[str]) -> None:
    """The family defines the steps this run calls (training, validation, test), checked before
    any of them: Lightning finds a missing test_step only once the whole fit is over."""
    from pytorch_lightning.utilities.model_helpers import is_overridden

    missing = [f"{stage}_step" for stage in stages if not is_overridden(f"{stage}_step", model)]
    if missing:
        family = getattr(model, "family", type(model).__name__)
        raise ConfigError(
            f"the {family} family defines no {' or '.join(missing)}: a family's validation_step "
            "and test_step log val/nll and test/nll (what checkpoints select by), as "
            "models/lstm.py's do" + ("; or pass test=false" if "test_step" in missing else "")
        )


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def check_accelerator(accelerator: Any, devices: Any = "auto") -> None:
    """A GPU trainer on a machine without one, an accelerator Cadenza does not train on, or a
    device count Lightning would refuse fail here naming the key, rather than inside
    Lightning's accelerator set-up."""
    import torch

    if accelerator is not None and str(accelerator) not in ACCELERATORS:
        raise ConfigError(f"trainer.accelerator={accelerator} is not one Cadenza trains on: use "
                          f"{', '.join(ACCELERATORS)}")  # fmt: skip
    if not _devices_ok(devices):
        raise ConfigError(f"trainer.devices must be how many devices (an integer >= 1, or -1 / "
                          f"auto for every visible one) or a list of device indices, got "
                          f"{_shown(devices)}")  # fmt: skip
    if str(accelerator) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator}: no CUDA GPU is visible to this "
                          "process; train on the CPU with trainer=cpu (trainer=ddp_sim: two CPU "
                          "processes)")  # fmt: skip


def _devices_ok(devices: Any) -> bool:
    if devices is None or devices == "auto":
        return True
    if isinstance(devices, bool):
        return False
    if isinstance(devices, int):
        return devices >= 1 or devices == -1
    if isinstance(devices, str):  # "2", "-1" or "0,1"
        parts = devices.split(",")
        return all(p.strip().lstrip("-").isdigit() for p in parts) and (
            len(parts) > 1 or int(parts[0]) >= 1 or int(parts[0]) == -1)  # fmt: skip
    try:
        return len(devices) > 0 and all(isinstance(d, int) and d >= 0 for d in devices)
    except TypeError:
        return False


def _check_max_time(value: Any) -> None:
    """Lightning's Timer takes "DD:HH:MM:SS" or timedelta's keywords; anything else failed
    inside the Trainer's constructor with a message that did not name the key."""
    if isinstance(value, str) and MAX_TIME.fullmatch(value):
        return
    if isinstance(value, dict | DictConfig) and value and set(value) <= TIMEDELTA_KEYS:
        return
    raise ConfigError(f"trainer.max_time must be DD:HH:MM:SS (00:04:00:00 is 4 hours) or "
                      f"{{hours: 4}}-style keywords, got {_shown(value)}")  # fmt: skip


def check_val_interval(trainer: Any, datamodule: Any) -> None:
    """An integer trainer.val_check_interval over an epoch's training batches: Lightning says so
    only inside fit, after the data is prepared, as a traceback."""
    interval = trainer.val_check_interval
    if (not isinstance(interval, int) or isinstance(interval, bool)
            or trainer.check_val_every_n_epoch is None or trainer.fast_dev_run):  # fmt: skip
        return
    try:
        batches = len(datamodule.train_dataloader())
    except TypeError:  # an iterable dataset has no length: Lightning checks as it goes
        return
    limit = trainer.limit_train_batches
    batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
    if interval > batches:
        raise ConfigError(
            f"trainer.val_check_interval={interval} is more than an epoch's {batches} training "
            "batches: set trainer.val_check_interval=null (validate at each epoch's end) or a "
            f"number up to {batches}"
        )


def _check_batches(name: str, value: Any) -> None:
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        return
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return
    raise ConfigError(f"{name} must be a number of batches (an integer >= 0) or a fraction of "
                      f"them (a number in [0.0, 1.0]), got {value!r}")  # fmt: skip


def check_resumable(model: Any, ckpt: dict[str, Any], path: Any) -> None:
    """A checkpoint resumes only into the model it was trained as. Lightning finds out inside
    fit, after the data is prepared, as a page of state_dict size mismatches; this names the
    settings that differ, and the overrides the checkpoint's run was started with."""
    theirs = {k: tuple(v.shape) for k, v in (ckpt.get("state_dict") or {}).items()}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    hp = dict(ckpt.get("hyper_parameters") or {})
    family = hp.get("family")
    if family == model.family and theirs == ours:
        return
    mine = {k: v for k, v in dict(model.hparams).items() if k != "family"}
    hp.pop("family", None)
    differ = _differences("model", hp, mine, "this run", shared_only=False)
    what = f"a {family} model" if family != model.family else "a model"
    run = ckpt.get("cadenza_run") or {}
    started = run.get("overrides")
    how = (f"; the command that wrote it was: cadenza-train {' '.join(started)}" if started
           else " (the experiment and the overrides it was trained with)")  # fmt: skip
    raise ConfigError(
        f"ckpt_path={path} holds {what} of another shape than this run's {model.family} model"
        f"{': ' + '; '.join(differ[:8]) if differ else ''}. Resume with the settings it was "
        f"trained with{how}"
    )


def check_same_settings(cfg: DictConfig, ckpt: dict[str, Any]) -> list[str]:
    """A resume goes on with the model and data settings its checkpoint was trained with
    unless told otherwise: this says which of this run's differ (a resume is how a run gets
    more epochs; a setting changed on the way is easy to miss), and that the optimizer's, its
    learning rate among them, do not take effect (Lightning restores the optimizer's state from
    the checkpoint). -> the differences, as said."""
    record = ckpt.get("cadenza_run") or {}
    # The run's model config (optimizer included), else its hyperparameters (older runs).
    hp = _flat(dict(record.get("model") or ckpt.get("hyper_parameters") or {}))
    ours = _flat(OmegaConf.to_container(cfg.model, resolve=True))
    differ = _differences("model", ours, hp, "the run's")
    theirs = _flat(dict(record.get("data") or {}))
    if theirs:
        data = OmegaConf.to_container(cfg.data, resolve=True)
        mine = _flat({k: v for k, v in data.items() if k != "codec"})
        differ += _differences("data", mine, theirs, "the run's")
    if differ:
        optimizer = [d for d in differ if d.startswith("model.optimizer.")]
        log.warning("resuming with settings other than the run's: %s%s", "; ".join(differ),
                    ". The optimizer's state, its learning rate included, is restored from the "
                    "checkpoint: a changed model.optimizer.* does not take effect (start a new "
                    "run, or fine-tune from it, for that)" if optimizer else "")  # fmt: skip
    return differ


def _differences(group: str, shown: dict[str, Any], other: dict[str, Any], whose: str,
                 shared_only: bool = True) -> list[str]:  # fmt: skip
    """Each key whose values differ, in key order, said as `group.key=<shown's> (<whose>:
    <other's>)`: of the keys both hold, or (shared_only=False) either holds (missing: None)."""
    keys = set(shown) & set(other) if shared_only else set(shown) | set(other)
    return [f"{group}.{k}={_shown(shown.get(k))} ({whose}: {_shown(other.get(k))})"
            for k in sorted(keys) if shown.get(k) != other.get(k)]  # fmt: skip


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _shown(value: Any) -> str:
    """A setting as an error shows it: a codec's or a list's whole dict would bury the line."""
    if isinstance(value, dict):
        return "{...}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
