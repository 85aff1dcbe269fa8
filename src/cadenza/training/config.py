"""Hydra/OmegaConf helpers: resolvers, instantiation that keeps our errors readable."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate as _instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from cadenza.errors import CadenzaError, ConfigError


def wandb_logged_in() -> bool:
    """True when the user has a W&B API key; otherwise runs log offline (no network needed)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def job_suffix() -> str:
    """ "_<job number>" inside a Hydra multirun (jobs of one sweep can start in the same
    second), "" for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return ""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN or hydra_cfg.job.get("num") is None:
        return ""
    return f"_{hydra_cfg.job.num}"


def run_name(timestamp: str) -> str:
    """A run's checkpoint folder name (paths.checkpoint_dir): `timestamp` for a single run; a
    sweep's job's is its output folder's, the sweep's folder and the job's number
    (`<date_time>_<num>`), which the job keeps when SLURM requeues it, so that `ckpt_path=auto`
    finds its own last.ckpt again."""
    suffix = job_suffix()
    if not suffix:
        return timestamp
    from hydra.core.hydra_config import HydraConfig

    output_dir = OmegaConf.select(HydraConfig.get(), "runtime.output_dir", default=None)
    sweep = Path(output_dir).parent.name if output_dir else timestamp
    return f"{sweep}{suffix}"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("cadenza_wandb_offline"):
        OmegaConf.register_new_resolver("cadenza_wandb_offline", lambda: not wandb_logged_in())
    if not OmegaConf.has_resolver("cadenza_job_suffix"):  # configs written before run_name
        OmegaConf.register_new_resolver("cadenza_job_suffix", job_suffix)
    if not OmegaConf.has_resolver("cadenza_run_name"):
        OmegaConf.register_new_resolver("cadenza_run_name", run_name)


def instantiate(node: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, but a CadenzaError raised inside a constructor comes out as
    itself (not wrapped in three lines of Hydra context), and a missing `???` value says which
    key to set.

    `kwargs` (what a model is sized from, a trainer's callbacks) reach the constructor as they
    are: given to Hydra they would first be copied into OmegaConf nodes, 4 s for the Last.fm
    recommender's 17,632 catalog keys and names."""
    _check_settings(node, kwargs)
    try:
        if not kwargs:
            return _instantiate(node)
        make = _instantiate(node, _partial_=True)
        try:
            return make(**kwargs)
        except CadenzaError:
            raise
        except Exception as e:  # as Hydra reports a constructor's error
            target = getattr(make, "func", make)
            name = f"{target.__module__}.{target.__qualname__}"
            raise InstantiationException(f"Error in call to target '{name}':\n{e!r}") from e
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, CadenzaError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise ConfigError(str(e)) from e
    except MissingMandatoryValue as e:
        raise missing_value_error(e) from None


# Hydra's own keys in a node, not the constructor's.
HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


def _check_settings(node: Any, given: dict[str, Any]) -> None:
    """A key the constructor does not take (`+model.hiden_size=64`, a typo Hydra's "use +"
    advice leads to) is named with the nearest setting, not as a TypeError from inside Hydra.
    Nested nodes with a `_target_` (data.source) are checked the same way."""
    import difflib

    from omegaconf import DictConfig

    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    for key in node:
        try:
            value = None if OmegaConf.is_missing(node, key) else node[key]
        except Exception:  # noqa: BLE001 - an interpolation Hydra will report itself
            continue
        if isinstance(value, DictConfig) and "_target_" in value:
            _check_settings(value, {})
    found = constructor_settings(node)
    if found is None:
        return
    name, takes = found
    unknown = [k for k in (*node.keys(), *given) if k not in HYDRA_KEYS and k not in takes]
    if unknown:
        where = node._get_full_key(None)
        prefix = f"{where}." if where else ""
        key = unknown[0]
        near = difflib.get_close_matches(str(key), takes, n=1)
        hint = f"did you mean {prefix}{near[0]}?" if near else ""
        if len(takes) <= 20 or not near:  # a Trainer's 40 would bury the line
            hint += f" {name}'s settings are {', '.join(sorted(takes))}"
        raise ConfigError(f"{prefix}{key} is not a setting of {name}: {hint.strip()}")


def constructor_settings(node: Any) -> tuple[str, list[str]] | None:
    """(class name, the keyword arguments it takes) for a config node with a `_target_`; None
    when it has none, Hydra cannot import it, or it takes any keyword (**kwargs)."""
    import inspect

    from hydra.utils import get_object
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    try:
        target = get_object(str(node["_target_"]))
        params = inspect.signature(target).parameters
    except Exception:  # noqa: BLE001 - Hydra reports a target it cannot find or read
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    takes = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    return getattr(target, "__name__", str(target)), takes


def missing_value_error(e: MissingMandatoryValue) -> ConfigError:
    key = e.full_key or "a required value"
    return ConfigError(f"{key} must be set: add `{key}=...` to the command line")


def require(cfg: Any, key: str) -> Any:
    """cfg value at dotted `key`, with a ConfigError naming it if it is `???` or missing."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except MissingMandatoryValue as e:
        raise missing_value_error(e) from None
    if value is None:
        raise ConfigError(f"{key} must be set: add `{key}=...` to the command line")
    return value
