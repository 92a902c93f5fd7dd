"""Model files: arrays in ``NAME.npz`` (loaded with ``allow_pickle=False``) next to
``NAME.json`` holding the training configuration and metrics. No pickle anywhere.

Shipped models live in ``data/models/`` (package ``rrambench_data.models``):
``ring`` (noise-aware training), ``ring-plain`` (trained without noise injection),
``digits`` (conditional score network, noise-aware), ``digits-plain`` (the same without noise
injection, on the same VAE) and ``digits-vae`` (decoder + encoder).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instruments.paths import data_dir
from protocols.diffusion.model import ScoreNet
from protocols.diffusion.samplers import STEPS_RING, T_END
from protocols.diffusion.sde import BETA_MAX, BETA_MIN, BETA_SCALE_RING, VPSDE

SHIPPED = ("ring", "ring-plain", "digits", "digits-plain", "digits-vae")
#: The shipped conditional score networks: both sample the latents of the shipped ``digits-vae``.
SHIPPED_DIGITS = ("digits", "digits-plain")


def models_dir() -> Path:
    """Folder of the shipped model files."""
    return data_dir() / "models"


def _paths(path: str | Path) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix in (".npz", ".json"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")


def _jsonable(value: Any) -> Any:
    """Plain JSON types for numpy scalars/arrays and nested containers; NaN refused."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"meta: non-finite number {value} cannot be stored in JSON")
    return value


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write ``path.npz`` (arrays, compressed) and ``path.json`` (meta); returns the npz path.

    path: file name with or without the ``.npz`` suffix. Arrays must be numeric.
    """
    npz, js = _paths(path)
    for name, arr in arrays.items():
        if np.asarray(arr).dtype.kind not in "biuf":
            raise ValueError(f"arrays[{name!r}]: numeric arrays only, got {np.asarray(arr).dtype}")
    npz.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_jsonable(meta), indent=2, sort_keys=True) + "\n"
    np.savez_compressed(npz, **{k: np.asarray(v) for k, v in arrays.items()})
    js.write_text(text)
    return npz


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read the pair written by :func:`save_arrays`; a missing json gives empty meta."""
    npz, js = _paths(path)
    if not npz.is_file():
        raise FileNotFoundError(f"model file not found: {npz}")
    with np.load(npz, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(js.read_text()) if js.is_file() else {}
    return arrays, meta


@dataclass(frozen=True)
class SamplingConfig:
    """How a trained score network is sampled.

    beta_scale: factor on both beta ends at sampling (2 ring, 1.5 conditional), > 0.
    n_steps: Euler steps from t = 1 to ``t_end``; t_end: final diffusion time (> 0).
    """

    beta_scale: float = BETA_SCALE_RING
    n_steps: int = STEPS_RING
    t_end: float = T_END


@dataclass
class TrainedModel:
    """A score network with the SDE it was trained on and how to sample it."""

    net: ScoreNet
    sde: VPSDE = field(default_factory=VPSDE)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def sampling_sde(self) -> VPSDE:
        """The SDE the sampler integrates: training schedule times ``beta_scale``."""
        return self.sde.scaled(self.sampling.beta_scale)

    @property
    def task(self) -> str:
        """Task name from the training config ("ring", "digits", ...), "" if unknown."""
        return str(self.meta.get("config", {}).get("task", ""))

    def save(self, path: str | Path) -> Path:
        """Write ``path.npz`` + ``path.json``; the json carries SDE and sampling settings."""
        meta = dict(self.meta)
        meta["sde"] = {"beta_min": self.sde.beta_min, "beta_max": self.sde.beta_max}
        meta["sampling"] = {
            "beta_scale": self.sampling.beta_scale,
            "n_steps": self.sampling.n_steps,
            "t_end": self.sampling.t_end,
        }
        meta.setdefault("kind", "score-net")
        return save_arrays(path, self.net.arrays(), meta)

    @classmethod
    def load(cls, path: str | Path) -> TrainedModel:
        """Read a score-network file pair."""
        arrays, meta = load_arrays(path)
        sde = meta.get("sde", {})
        smp = meta.get("sampling", {})
        return cls(
            net=ScoreNet.from_arrays(arrays),
            sde=VPSDE(float(sde.get("beta_min", BETA_MIN)), float(sde.get("beta_max", BETA_MAX))),
            sampling=SamplingConfig(
                float(smp.get("beta_scale", BETA_SCALE_RING)),
                int(smp.get("n_steps", STEPS_RING)),
                float(smp.get("t_end", T_END)),
            ),
            meta=meta,
        )


def shipped_path(name: str) -> Path:
    """Path (``.npz``) of a shipped model; unknown names raise ``ValueError`` listing them."""
    if name not in SHIPPED:
        raise ValueError(f"name: unknown shipped model {name!r}; choose from {', '.join(SHIPPED)}")
    return models_dir() / f"{name}.npz"


def load_shipped(name: str) -> TrainedModel:
    """A shipped score network: "ring", "ring-plain", "digits" or "digits-plain"."""
    if name == "digits-vae":
        raise ValueError("name: 'digits-vae' is a VAE; load it with protocols.diffusion.vae.load_vae")
    return TrainedModel.load(shipped_path(name))
