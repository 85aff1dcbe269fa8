"""Sampling controls shared by every family: temperature, top-k, top-p (nucleus).

Order follows common practice (HF transformers, nanoGPT): logits / temperature, then top-k, then
top-p on the tempered distribution. Random draws come from uniforms made on the generator's own
device and moved to the logits' device, so one seeded CPU generator gives the same samples
whichever device the model runs on.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cadenza.errors import ConfigError

# Below this temperature the tempered distribution is numerically a point mass: take the argmax
# instead of dividing by ~0, which could overflow to inf and turn softmax into NaN.
GREEDY_TEMPERATURE = 1e-6


def check_controls(
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> None:
    """Raise ConfigError unless temperature > 0, top_k is an int >= 1, 0 < top_p <= 1."""
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise ConfigError(f"temperature must be a number > 0, got {temperature!r}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ConfigError(
            f"temperature must be > 0 (1.0 samples the model as trained, smaller is more "
            f"conservative), got {temperature!r}"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top_k must be an integer >= 1 or null (no top-k), got {top_k!r}")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, int | float):
            raise ConfigError(f"top_p must be a number in (0, 1] or null, got {top_p!r}")
        if not 0.0 < top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1] (1 keeps everything), got {top_p!r}")


def filter_logits(
    logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """logits [..., V] -> [..., V] with filtered-out entries set to -inf.

    top_k keeps the k largest (ties at the k-th value are all kept); top_p keeps the smallest
    prefix of the sorted distribution whose mass reaches top_p. At least one token always stays.
    """
    check_controls(1.0, top_k, top_p)
    out = logits
    V = logits.shape[-1]
    if top_k is not None and top_k < V:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]  # [..., 1]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)  # [..., V]
        probs = torch.softmax(sorted_logits.float(), dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        # A token stays if the tokens ranked above it have not yet reached top_p; the first
        # always stays since its mass_before is 0.
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


class RowGenerators:
    """One seeded generator per group of rows of a batch: several requests drawn in one batched
    sampling loop, each from its own stream.

    Every draw of a sampling loop has the batch's rows first (`uniform`, `normal`); a group's
    rows take their numbers from their own generator, in the order a call for that group alone
    would. So a request's notes do not depend on what it was batched with, as long as the
    model's arithmetic for a row does not either (tests/test_sampling.py checks it per family).
    """

    def __init__(self, groups: list[tuple[int, torch.Generator]]) -> None:
        if not groups or any(n < 1 for n, _ in groups):
            raise ValueError("RowGenerators needs groups of at least one row each")
        self.groups = groups
        self.rows = sum(n for n, _ in groups)

    def draw(self, fn: Any, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        if not shape or shape[0] != self.rows:
            raise ValueError(f"a batched draw must have the batch's {self.rows} rows first, "
                             f"got shape {list(shape)}")  # fmt: skip
        parts = [fn((n, *shape[1:]), generator=g, device=g.device) for n, g in self.groups]
        return torch.cat(parts).to(device)


Generators = torch.Generator | RowGenerators | None


def uniform(
    shape: torch.Size | tuple[int, ...],
    device: torch.device,
    generator: Generators = None,
) -> torch.Tensor:
    """U[0, 1) of `shape` on `device`, drawn on the generator's device for reproducibility."""
    if generator is None:
        return torch.rand(shape, device=device)
    if isinstance(generator, RowGenerators):
        return generator.draw(torch.rand, tuple(shape), device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def normal(
    shape: torch.Size | tuple[int, ...],
    device: torch.device | str = "cpu",
    generator: Generators = None,
) -> torch.Tensor:
    """N(0, 1) of `shape` (latents), as `uniform` draws: on the generator's device."""
    if generator is None:
        return torch.randn(shape, device=device)
    if isinstance(generator, RowGenerators):
        return generator.draw(torch.randn, tuple(shape), torch.device(device))
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def sample_categorical(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits [..., V] -> LongTensor [...] of sampled ids."""
    check_controls(temperature, top_k, top_p)
    logits = logits.float()
    if temperature <= GREEDY_TEMPERATURE:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits / temperature, top_k, top_p)
    probs = torch.softmax(logits, dim=-1)  # [..., V]
    # Inverse-CDF draw: one uniform per row, so the generator's stream does not depend on V.
    cdf = torch.cumsum(probs, dim=-1)
    u = uniform(cdf.shape[:-1], cdf.device, generator).unsqueeze(-1) * cdf[..., -1:]
    ids = (cdf <= u).sum(dim=-1)
    # Rounding can leave u above the last cdf entry; clamp onto the last token with mass.
    last_kept = (probs > 0).long().cumsum(-1).argmax(-1)
    return torch.minimum(ids, last_kept)


def event_first_argmax(logits: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
    """Greedy decoding by event, then by id: logits [..., V], events [V] (each id's event
    class, `Codec.token_events`) -> LongTensor [...].

    The class with the most probability wins (summed over its ids), then its most likely id.
    A plain argmax compares HOLD with each pitch's NOTE_ON one at a time; when the model is
    sure a note starts but not which, HOLD wins every step and the melody stalls on one note.
    """
    probs = torch.softmax(logits.float(), dim=-1)
    classes = int(events.max()) + 1
    mass = probs.new_zeros(*probs.shape[:-1], classes).index_add_(-1, events, probs)
    best = mass.argmax(-1, keepdim=True)  # [..., 1]
    in_best = events == best  # [..., V]
    return logits.float().masked_fill(~in_best, float("-inf")).argmax(-1)


def sample_bernoulli(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Independent binary units: logits [...] -> float 0/1 [...]; temperature divides logits."""
    check_controls(temperature)
    logits = logits.float()
    if temperature <= GREEDY_TEMPERATURE:
        return (logits > 0).float()
    p = torch.sigmoid(logits / temperature)
    return (uniform(p.shape, p.device, generator) < p).float()


DEVICES = "cpu, cuda, cuda:N or auto (the first CUDA GPU when one is visible, else the CPU)"


def pick_device(value: Any, key: str = "device") -> torch.device:
    """The device a loaded model samples on, from cadenza-sample's or cadenza-serve's `key`.
    A device this process cannot use fails here, at start-up, naming the key: not at the first
    request. Apple's mps is left out until a run of every family has been seen to work on it."""
    text = "" if value is None else str(value).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{key}={value!r} is not a device; use {DEVICES}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"{key}={text}: Cadenza samples on {DEVICES}")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(
            f"{key}={text}: no CUDA GPU is visible to this process (torch {torch.__version__}, "
            f"{build}); use {key}=cpu or {key}=auto"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(f"{key}={text}: this process sees {count} CUDA GPU(s), "
                          f"cuda:0 to cuda:{count - 1}")  # fmt: skip
    return device
