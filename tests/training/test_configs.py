"""Every config composes and builds (data module, model sized from the codec, trainer)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cadenza.paths import config_dir
from cadenza.training.config import register_resolvers, wandb_logged_in
from cadenza.training.loop import build
from tests.helpers import compose_train

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_builds_model_sized_from_codec(experiment: str, tmp_path: Path) -> None:
    overrides = [f"experiment={experiment}"]
    if experiment in ("midi_folder_lstm", "audio_folder_vae"):
        overrides.append(f"data.root={tmp_path}")
    if experiment == "styles_recommender":  # 10 pieces per style build the same way as 150
        overrides += ["data.source.per_style=10", "data.source.n_users=50"]
    if experiment in ("pop909_remi_lstm", "pop909_transformer"):
        # A BPE vocabulary learned from 8 songs sizes the model as one from 909 does (15 s
        # less; the slice and its cache are tests/cli/test_experiments.py's).
        overrides.append("data.source.limit=8")
    datamodule, model, trainer = build(compose_train(tmp_path, overrides))
    if model.family == "recommender":  # sized from its catalog, not a codec
        catalog = datamodule.catalog
        assert (model.hparams.n_users, model.hparams.n_items) == catalog.train.shape
        assert model.item_features.shape == catalog.features.shape
        assert model.hparams.item_keys == catalog.item_keys
        return
    codec = datamodule.codec
    assert model.codec == codec
    if model.family == "vae":
        assert model.encoder.embed.vocab == codec.vocab_size
        assert model.tracks == (codec.row_shape[0] if codec.row_shape else 1)
        assert model.window_steps == codec.steps_for_bars(datamodule.window_bars)
    elif model.family == "gan":
        assert codec.row_shape == (model.K, model.P) and codec.steps_per_bar == model.S
        assert model.phrase_steps == codec.steps_for_bars(datamodule.window_bars)
    elif model.family == "mel_vae":
        assert (model.window_steps, model.bands) == (
            codec.steps_for_bars(datamodule.window_bars),
            codec.feature_dim,
        )
        assert model.decoder(torch.zeros(1, model.hparams.latent_size)).shape[1:] == (
            model.window_steps,
            codec.feature_dim,
        )
    elif model.family == "classifier":  # the encoder reads the codec's steps
        assert model.encoder.project.in_features == codec.feature_dim
    elif codec.kind == "frames":
        assert model.net.feature_dim == codec.feature_dim
    else:
        assert model.net.embed.num_embeddings == codec.vocab_size
    assert trainer.max_epochs >= 1


@pytest.mark.parametrize("trainer", ["cpu", "ddp_sim"])
def test_cpu_trainers_build(trainer: str, tmp_path: Path) -> None:
    _, _, t = build(compose_train(tmp_path, ["experiment=smoke", f"trainer={trainer}"]))
    assert t.num_devices == (2 if trainer == "ddp_sim" else 1)


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_gpu_trainers_ask_for_bf16(trainer: str, tmp_path: Path) -> None:
    # No GPU here: check the composed config rather than building a Trainer.
    cfg = compose_train(tmp_path, ["experiment=smoke", f"trainer={trainer}"])
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    if trainer == "ddp":
        assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == -1


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_only_a_family_that_declares_it_asks_ddp_for_unused_parameters(strategy: str) -> None:
    from cadenza.models import FAMILIES
    from cadenza.training.loop import strategy_for

    asks = {f for f, cls in FAMILIES.items() if cls.ddp_find_unused_parameters}
    assert asks == {"gan"}  # the critic and generator steps alternate
    for family, cls in FAMILIES.items():
        model = cls.__new__(cls)  # the declaration is a class attribute: no weights needed
        want = f"{strategy}_find_unused_parameters_true" if family in asks else strategy
        assert strategy_for(model, strategy) == want
        assert strategy_for(model, "auto") == "auto"


def test_wandb_is_offline_unless_logged_in(tmp_path: Path, monkeypatch) -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    register_resolvers()
    assert not wandb_logged_in()
    node = OmegaConf.load(config_dir() / "logger" / "wandb.yaml")
    node.wandb.name, node.wandb.save_dir, node.wandb.tags = "t", str(tmp_path), ["t"]
    logger = instantiate(node.wandb)
    assert logger._offline is True
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_logged_in()


GROUPS = ["data", "representation", "model", "callbacks", "logger", "trainer", "debug",
          "hparams_search"]  # fmt: skip
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((config_dir() / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_config_option_composes_and_names_importable_targets(
    group: str, option: str, tmp_path: Path
) -> None:
    """No config file is dead weight: each composes into cadenza-train, and every class it
    names can be imported (a typo in a `_target_` fails here, not in a user's run)."""
    from hydra.utils import get_object
    from omegaconf import OmegaConf

    cfg = compose_train(tmp_path, [f"{group}={option}"])
    node = OmegaConf.to_container(cfg, resolve=False)

    def targets(x: object) -> list[str]:
        if isinstance(x, dict):
            own = [x["_target_"]] if isinstance(x.get("_target_"), str) else []
            return own + [t for v in x.values() for t in targets(v)]
        return [t for v in x for t in targets(v)] if isinstance(x, list) else []

    for target in targets(node):
        assert callable(get_object(target)), target
    if (group, option) == ("debug", "fdr"):
        assert cfg.trainer.fast_dev_run is True
    if (group, option) == ("debug", "short"):  # every batch limit a plain override can set
        assert (cfg.trainer.limit_train_batches, cfg.trainer.val_check_interval) == (10, None)


def test_sampling_controls_are_defined_once_for_train_sample_recommend_and_serve(
    tmp_path: Path,
) -> None:
    """configs/sampling/default.yaml is the one definition; each entry point overrides only
    what it documents (train: n=0 and out_dir, recommend: n=candidates, serve: n=1 and a
    browser-sized sample rate)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from cadenza.serve.settings import sampling_defaults

    group = sampling_defaults()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        sample = OmegaConf.to_container(compose("sample", ["ckpt_path=x"]))
        recommend = OmegaConf.to_container(compose("recommend", ["ckpt=x", "candidates=5"]),
                                           resolve=True)  # fmt: skip
        serve = OmegaConf.to_container(compose("serve", ["checkpoints=x"]))
    GlobalHydra.instance().clear()
    train_sample = OmegaConf.to_container(compose_train(tmp_path, []).sample)
    assert {k: sample[k] for k in group} == group
    assert recommend["sample"] == group | {"n": 5}
    assert serve["sample"] == group | {"n": 1, "sample_rate": 22050}
    assert {k: v for k, v in train_sample.items() if k != "out_dir"} == group | {"n": 0}


def test_a_sweep_goes_to_slurm_through_the_submitit_launcher(tmp_path: Path) -> None:
    """`cadenza-train -m hydra/launcher=slurm ...` composes into Hydra's submitit SLURM launcher
    with our defaults (one job per run, its scripts beside the sweep's outputs), and the
    launcher class is installed. (Submitting needs a cluster; the local multirun is
    tests/cli/test_experiments.py's.)"""
    from hydra.utils import get_class

    overrides = ["hydra.launcher.partition=gpu", "hydra.launcher.nodes=2"]
    cfg = compose_train(tmp_path, ["experiment=jsb_lstm", "hydra/launcher=slurm", *overrides])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"
    assert (launcher.partition, launcher.nodes, launcher.tasks_per_node) == ("gpu", 2, 1)
    assert launcher.timeout_min == 240 and launcher.submitit_folder.endswith(".submitit/%j")
