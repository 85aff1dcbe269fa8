"""Each run's folders are its own: its checkpoint folder and its output folder, both named to
the second, so two runs of one name started in the same second (a job array, a shell loop)
would share them. The first process to make (checkpoints) or mark (outputs: Hydra has made
it already) a folder keeps it; the next gets `<time>.2`, `.3`, ... A distributed run's other
processes share the first's (Lightning hands them its checkpoint folder)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger("cadenza")


def distributed_follower() -> bool:
    """A process of a distributed run other than its first (torchrun's and srun's other ranks,
    Lightning's DDP children): it shares the folders the first one makes."""
    return any(os.environ.get(k, "0") not in ("", "0") for k in ("RANK", "LOCAL_RANK",
                                                                   "SLURM_PROCID"))  # fmt: skip


_CLAIMED: dict[str, str] = {}  # path asked for -> folder made, for this process


def claim_dir(path: str | Path) -> str:
    """`path`, made by this process, or else `path.2`, `path.3`, ...: two runs of one name
    started in the same second (a job array, a shell loop) each get a checkpoint folder of
    their own instead of writing over each other's files. mkdir is atomic, so two processes
    never both make one. The same path asked again in this process gives the same folder; a
    distributed run's other processes take the path as it is (Lightning gives them the first
    process's)."""
    key = str(path)
    if key in _CLAIMED:
        return _CLAIMED[key]
    if distributed_follower():
        return key
    base = Path(key)
    base.parent.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        candidate = base if k == 1 else base.with_name(f"{base.name}.{k}")
        try:
            candidate.mkdir()
        except FileExistsError:
            k += 1
            continue
        _CLAIMED[key] = str(candidate)
        return str(candidate)


OWNER_MARK = ".cadenza_run"


def own_output_dir(cfg: DictConfig) -> Path | None:
    """This run's output folder (Hydra's, named to the second) is its own, or it moves: the
    first process to mark the folder keeps it; a run started in the same second as another of
    its name (a job array, a shell loop) goes on in <time>.2, with its log file, its config
    record (.hydra) and everything it writes there, instead of over the other's samples and
    logs. A distributed run's other processes share the first's folder."""
    output_dir = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False)
    if not output_dir or distributed_follower() or not Path(output_dir).is_dir():
        return None
    folder = Path(output_dir)
    if _mark(folder):
        return folder
    moved = Path(claim_dir(folder))  # folder exists: <time>.2, .3, ...
    _mark(moved)
    with open_dict(cfg):
        cfg.paths.output_dir = str(moved)
    root = logging.getLogger()
    for handler in list(root.handlers):  # Hydra's train.log goes with the run
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == folder:
            fresh = logging.FileHandler(moved / Path(handler.baseFilename).name)
            fresh.setFormatter(handler.formatter)
            fresh.setLevel(handler.level)
            root.removeHandler(handler)
            handler.close()
            root.addHandler(fresh)
    _write_run_record(cfg, moved / ".hydra")
    log.warning("another run of %s started in the same second and writes to %s: this one "
                "writes to %s instead (the .hydra record there may be either run's; this "
                "run's is in its own folder)", cfg.name, folder, moved)  # fmt: skip
    return moved


def _mark(folder: Path) -> bool:
    """Whether this process is the first to mark `folder` as its run's (O_EXCL: atomic), or
    marked it before (a second run in one process, as the tests train)."""
    try:
        fd = os.open(folder / OWNER_MARK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            return (folder / OWNER_MARK).read_text().strip() == str(os.getpid())
        except OSError:
            return False
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    return True


def _write_run_record(cfg: DictConfig, folder: Path) -> None:
    """What Hydra writes in a run's .hydra folder, for a run that moved out of Hydra's."""
    from hydra.core.hydra_config import HydraConfig

    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    if HydraConfig.initialized():
        OmegaConf.save(HydraConfig.get(), folder / "hydra.yaml")
        OmegaConf.save(OmegaConf.create(list(HydraConfig.get().overrides.task)),
                       folder / "overrides.yaml")  # fmt: skip


def keep_run_record(cfg: DictConfig, folder: Path) -> None:
    """A run that kept its output folder writes its .hydra record again if a run started in
    the same second wrote its own there (Hydra writes it before either run can tell)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    mine = list(HydraConfig.get().overrides.task)
    try:
        there = OmegaConf.to_container(OmegaConf.load(folder / "overrides.yaml"))
    except (OSError, ValueError):
        there = None
    if there != mine:
        _write_run_record(cfg, folder)
        log.info("wrote this run's .hydra record again: a run started in the same second had "
                 "written its own over it")  # fmt: skip


def remove_empty(folder: Path, root: Path) -> None:
    """`folder` and then its parents, each while empty, up to (not including) `root`."""
    root = root.resolve()
    folder = folder.resolve()
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()  # only an empty one
        except OSError:
            return
        folder = folder.parent
