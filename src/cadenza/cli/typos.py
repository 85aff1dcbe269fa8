"""The nearest real key for an override whose key is not in the config.

`cadenza-train model.hiden_size=64` gets Hydra's "Could not override 'model.hiden_size'" with the
advice to append it as `+model.hiden_size=64`, which for a typo only moves the error. The console
scripts hold that report back and, where they can name what was meant, print one line per such
key in its place: the override as it was meant (`model.hidden_size=64`), or `+key=...` for a
constructor setting the config leaves at its default; exit status 2, as for every other error of
ours. Hydra's report is printed as it was where no key is near. The search runs only once Hydra
has failed, so a good command line pays nothing for it.
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cadenza.paths import config_dir
from cadenza.training.config import HYDRA_KEYS, constructor_settings, register_resolvers

# Enough for every override of a long sweep line; each try is one composition (~50 ms).
MAX_TRIES = 12


def names_typos(config_name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Decorates a @hydra.main entry point: when Hydra could not apply an override because its
    key does not exist, say the nearest key for each such override instead of Hydra's report
    (status 2), or Hydra's report where none is near (status 1, as Hydra exits)."""

    def wrap(hydra_main: Callable[[], Any]) -> Callable[[], Any]:
        @functools.wraps(hydra_main)
        def entry() -> Any:
            real = sys.stderr
            held = _HoldsOverrideErrors(real)
            sys.stderr = held
            try:
                return hydra_main()
            except SystemExit as e:
                if e.code != 1 or not held.held:
                    raise
                hints = typo_hints(*_config_and_overrides(config_name, sys.argv[1:]))
                if not hints:
                    raise
                held.held.clear()
                for line in hints:
                    print(f"cadenza: error: {line}", file=real, flush=True)
                raise SystemExit(2) from None
            finally:
                sys.stderr = real
                held.release()

        return entry

    return wrap


class _HoldsOverrideErrors:
    """stderr around Hydra's main: everything passes straight through, except Hydra's report
    of an override it could not apply ("Could not override ..." and what follows it, written
    just before Hydra exits), which is held until `release`, or dropped for the hints. Logging
    handlers Hydra makes keep this stream; it only passes writes on after that."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.held: list[str] = []

    def write(self, text: str) -> int:
        if self.held or text.startswith("Could not override"):
            self.held.append(text)
            return len(text)
        return self.stream.write(text)

    def release(self) -> None:
        if self.held:
            self.stream.write("".join(self.held))
            self.held.clear()
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding...
        return getattr(self.stream, name)


def _config_and_overrides(config_name: str, argv: list[str]) -> tuple[str, list[str]]:
    from hydra._internal.utils import get_args_parser  # Hydra's own reading of the command line

    try:
        args = get_args_parser().parse_args(argv)
    except BaseException:  # noqa: BLE001 - argparse exits on what it cannot read; so does Hydra
        return config_name, []
    return args.config_name or config_name, list(args.overrides or [])


def typo_hints(config_name: str, overrides: list[str]) -> list[str]:
    """One line for each override Hydra could not apply because its key is not in the config
    (none if the config composes, or fails for another reason)."""
    try:
        return list(_hints(config_name, overrides))
    except Exception:  # noqa: BLE001 - a hint is a courtesy: Hydra has reported the error already
        return []


def _hints(config_name: str, overrides: list[str]) -> Iterator[str]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException

    register_resolvers()
    given, first_run = zip(*_one_run(overrides), strict=True) if overrides else ((), ())
    kept = dict(enumerate(first_run))
    # (bad key, the override's key after it, value as given) of the overrides matching no key:
    # Hydra names the first part that is missing (`data.sorce` of `data.sorce.limit=3`).
    missing: list[tuple[str, str, str]] = []
    for _ in range(MAX_TRIES):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
                cfg = compose(config_name, overrides=list(kept.values()),
                              return_hydra_config=True)  # fmt: skip
            break
        except ConfigCompositionException as e:
            key = getattr(e.__cause__, "full_key", None)
            if not str(e).startswith("Could not override") or not key:
                return
            at = next((i for i, o in kept.items()
                       if (o.split("=", 1)[0] + ".").startswith(key + ".")), None)  # fmt: skip
            if at is None:
                return
            kept.pop(at)
            written, value = given[at].split("=", 1)
            missing.append((key, written[len(key) :], value))
        finally:
            GlobalHydra.instance().clear()
    else:
        return
    for key, rest, value in missing:
        yield _nearest(cfg, key, rest, value)


def _one_run(overrides: list[str]) -> Iterator[tuple[str, str]]:
    """(as given, as the sweep's first run has it): `a=1,2` composes as `a=1`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(overrides):
        line = override.input_line
        if not override.is_sweep_override():
            yield line, line
            continue
        try:
            yield line, f"{override.get_key_element()}={next(override.sweep_string_iterator())}"
        except Exception:  # noqa: BLE001 - an interval (Optuna) has no first value
            yield line, line.split("=", 1)[0] + "=0"  # composes as a number


def _homes(cfg: DictConfig, name: str, depth: int = 2) -> Iterator[str]:
    """Keys named `name` inside the config's groups (up to `depth` levels down)."""
    frontier = [("", cfg)]
    for _ in range(depth):
        nxt = []
        for prefix, node in frontier:
            for k in node:
                if k == "hydra":
                    continue
                try:
                    child = node._get_node(k)  # the node itself: no interpolation resolved
                except Exception:  # noqa: BLE001 - a hint is a courtesy
                    continue
                if isinstance(child, DictConfig):
                    path = f"{prefix}{k}"
                    if name in child:
                        yield f"{path}.{name}"
                    nxt.append((f"{path}.", child))
        frontier = nxt


def _nearest(cfg: DictConfig, key: str, rest: str, value: str) -> str:
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    prefix = f"{parent}." if parent else ""
    where = parent or "the config"
    if not isinstance(node, DictConfig):
        return f"{key}: {where} has no settings of its own"
    keys = [str(k) for k in node if k not in HYDRA_KEYS and k != "hydra"]
    if not parent:  # a group of the defaults left out (experiment: null) is no key, yet
        groups = [str(g) for g in cfg.hydra.runtime.choices if "/" not in g and "@" not in g]
        keys += [g for g in groups if g not in keys]
    # The constructor's settings the config leaves at their defaults (appended with "+"): one
    # of them spelled right is no typo, and the nearest of all is the one meant.
    if not parent:  # a group's setting given without its group (enable_progress_bar=false)
        homes = list(_homes(cfg, name))
        if homes:
            return f"{key} is not in the config: did you mean {homes[0]}{rest}={value}?"
    found = constructor_settings(node) if not rest else None
    defaults = [k for k in (found[1] if found else []) if k not in keys]
    near = difflib.get_close_matches(name, keys + defaults, n=1)
    if near and near[0] in keys:
        return f"{key} is not in {where}: did you mean {prefix}{near[0]}{rest}={value}?"
    if near and found:
        why = f"{near[0]} is a setting of {found[0]} the config leaves at its default"
        return f"{key} is not in {where}: did you mean +{prefix}{near[0]}={value}? ({why})"
    listed = keys + defaults
    shown = ", ".join(sorted(listed)[:30]) + (", ..." if len(listed) > 30 else "")
    return f"{key} is not in {where}, whose settings are {shown}"
