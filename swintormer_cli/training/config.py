"""Training configuration: YAML files in configs/, overridable key by key from the command line."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config_dict import from_data
from ..prior.cache import MapSettings

STAGE_ORDER: tuple[str, ...] = ("encoder", "restorer", "prior", "joint")
"""The training stages in the order ``stage: all`` runs them (training/stages.py says what each does)."""
STAGES: tuple[str, ...] = (*STAGE_ORDER, "all")


@dataclass
class ModelSection:
    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class PriorSection:
    kind: str = "none"
    """``latent`` (this project's, trained in stages), ``ldm-sr`` (the paper's: pretrained and frozen; the
    restorer learns to read its maps, made once per image and cached) or ``none``."""
    config: dict[str, Any] = field(default_factory=dict)
    train_sample_steps: int = 4
    """DDIM steps sampled with gradients in the prior and joint stages (DiffIR runs its few steps the same way)."""
    latent_loss_weight: float = 1.0
    source: str | None = None
    """``ldm-sr``: a Hub repo id (default ``CompVis/ldm-super-resolution-4x-openimages``) or a local folder."""
    revision: str | None = None
    """``ldm-sr``: the Hub commit to fetch (default: the branch's head when first fetched). The commit fetched
    is what the cache keys and the model file records either way."""
    maps: MapSettings = field(default_factory=MapSettings)
    """``ldm-sr``: how each image's map is sampled (steps, sampler, eta, seed) and stored (dtype)."""
    cache_dir: str | None = None
    """``ldm-sr``: where the maps are kept; default beside the data (``ROOT/.swintormer-prior-cache``)."""


@dataclass
class DataSection:
    kind: str = "sharp"
    """``sharp``: folders of sharp photos, degraded on the fly; ``pairs``: source/ + target/ folders;
    ``dpdd``: a DPDD training tree (official or Restormer layout)."""
    roots: list[str] = field(default_factory=list)
    crop_size: int = 128
    scale: tuple[float, float] = (0.5, 1.0)
    """``sharp``: photos are resized by a random factor in this range before cropping."""
    views: str = "single"
    """``dpdd``: ``single`` (the 8-bit centre view) or ``dual`` (16-bit left and right views)."""
    cache: bool = True
    """Keep decoded photos in memory (180 photos take ~400 MB)."""
    workers: int = 0


@dataclass
class OptimSection:
    lr: float = 3e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 200
    min_lr: float = 1e-5
    grad_clip: float = 0.01
    """Max gradient norm (Restormer's training code uses 0.01)."""
    ema: float = 0.999
    hold_steps: int = 0
    """Steps at ``lr`` after the warm-up, before the cosine begins (the official code holds 3e-4 for 12000)."""


@dataclass
class LossSection:
    frequency_weight: float = 0.0
    """Weight of an L1 on the FFT of the restored image beside the pixel L1 (0: pixels only; MIMO-UNet uses
    0.1)."""

    def __post_init__(self):
        if self.frequency_weight < 0:
            raise ValueError(f"loss.frequency_weight must be >= 0, got {self.frequency_weight}")


@dataclass
class ValidationSection:
    sets: list[str] = field(default_factory=list)
    """Paired folders (source/ + target/), or DPDD roots with ``kind: dpdd``, scored with the EMA weights, tiled
    the way ``deblur`` runs."""
    kind: str = "pairs"
    """``pairs`` or ``dpdd`` (the ``split`` of each root, read as ``eval`` reads DPDD, in ``data.views``)."""
    split: str = "val"
    every: int = 1000
    """Validate every this many steps, and at the last; 0: only at the last."""
    max_images: int = 6
    window: int | None = None
    shift: int | None = None
    prior_steps: int | None = None
    """Latent prior sampling steps (default: the inference default). Window, shift and steps are recorded in the
    model file as the settings it runs with by default."""
    gain_compensate: bool = False


@dataclass
class TrainConfig:
    name: str = "run"
    output_dir: str = "runs/run"
    config_file: str | None = None
    """The file the config was read from, as given to ``load_config`` (it sets it): the training record names
    it, so an exported model says which recipe reproduces it."""
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    """``auto``: bf16 autocast on CUDA (fp16 where bf16 is missing), fp32 on the CPU."""
    threads: int | None = None
    batch_size: int = 8
    max_steps: int = 1000
    stage: str = "restorer"
    stage_fractions: dict[str, float] = field(
        default_factory=lambda: {"restorer": 0.75, "prior": 0.125, "joint": 0.125}
    )
    """With ``stage: all``: the share of ``max_steps`` each stage gets, run in the order of STAGE_ORDER
    (``encoder`` only when ``init_from`` is an inference export, which has no target encoder)."""
    init_from: str | None = None
    """Start from the weights of a model file (a path, or a registered model's name) instead of random ones:
    fine-tuning. A file without a prior can start a run with one (its modulations start at zero, so the
    network starts out computing what the file's did). Ignored when a run resumes from its own checkpoint."""
    log_every: int = 20
    checkpoint_every: int = 500
    """Like ``log_every`` and ``validation.every``: also at the last step; 0 means only there."""
    model: ModelSection = field(default_factory=ModelSection)
    prior: PriorSection = field(default_factory=PriorSection)
    data: DataSection = field(default_factory=DataSection)
    degradation: dict[str, Any] = field(default_factory=dict)
    """DegradationConfig fields; ``recipe: lens`` (default) or ``disk`` (defocus-v1)."""
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    validation: ValidationSection = field(default_factory=ValidationSection)

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        unknown = set(self.stage_fractions) - set(STAGE_ORDER)
        if unknown or any(v < 0 for v in self.stage_fractions.values()) or sum(self.stage_fractions.values()) <= 0:
            raise ValueError(
                f"stage_fractions needs non-negative shares of {', '.join(STAGE_ORDER)}; got {self.stage_fractions}"
            )
        for key, value in (
            ("log_every", self.log_every),
            ("checkpoint_every", self.checkpoint_every),
            ("validation.every", self.validation.every),
        ):
            if value < 0:
                raise ValueError(f"{key} must be 0 (only at the last step) or a positive step count, got {value}")
        if self.prior.kind not in ("latent", "ldm-sr", "none"):
            raise ValueError(f"prior.kind must be 'latent', 'ldm-sr' or 'none', got {self.prior.kind!r}")
        if self.stage in ("encoder", "prior", "joint") and self.prior.kind == "none":
            raise ValueError(f"stage {self.stage!r} trains a prior, but prior.kind is 'none'")
        if self.prior.kind == "ldm-sr":
            if self.stage != "restorer":
                raise ValueError(
                    f"stage {self.stage!r} trains a prior, but the ldm-sr prior is pretrained and frozen: "
                    "use stage: restorer"
                )
            if self.data.kind not in ("pairs", "dpdd"):
                raise ValueError(
                    f"prior.kind ldm-sr trains from each image's prior map, made once and cached, which needs fixed "
                    f"blurry inputs; data.kind {self.data.kind!r} degrades photos anew at every step: use "
                    "data.kind pairs or dpdd"
                )
        if self.validation.kind not in ("pairs", "dpdd"):
            raise ValueError(f"validation.kind must be 'pairs' or 'dpdd', got {self.validation.kind!r}")
        if self.optim.hold_steps < 0:
            raise ValueError(f"optim.hold_steps must not be negative, got {self.optim.hold_steps}")

    def _boundaries(self) -> list[tuple[str, int, int]]:
        names = STAGE_ORDER
        total = sum(self.stage_fractions.get(n, 0.0) for n in names)
        out, start, acc = [], 0, 0.0
        for name in names:
            acc += self.stage_fractions.get(name, 0.0) / total
            end = round(acc * self.max_steps)
            if end > start:
                out.append((name, start, end))
            start = max(start, end)
        return out

    def stage_at(self, step: int) -> str:
        """The stage that global step ``step`` (0-based) belongs to."""
        if self.stage != "all":
            return self.stage
        for name, first, end in self._boundaries():
            if first <= step < end:
                return name
        return self._boundaries()[-1][0]

    def has_stage(self, stage: str) -> bool:
        return stage == self.stage or (self.stage == "all" and any(n == stage for n, _, _ in self._boundaries()))

    def stage_bounds(self, stage: str) -> tuple[int, int]:
        """[first, end) global steps of ``stage`` in this run."""
        if self.stage != "all":
            return 0, self.max_steps
        for name, first, end in self._boundaries():
            if name == stage:
                return first, end
        raise ValueError(f"stage {stage!r} has no steps in this run")

    @property
    def validation_window(self) -> int:
        """The window validation tiles with, recorded as the model's training window: by default the crop size."""
        return self.validation.window or self.data.crop_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def apply_override(data: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to a nested dict, in place."""
    if "=" not in assignment:
        raise ValueError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ValueError(f"--set has an empty key: {assignment!r}")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {key}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def _merge(base: dict, child: dict) -> dict:
    """``child`` over ``base``: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_config_file(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file's mapping, with its ``base:`` chain (paths relative to the file) merged under it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    base_path = (path.parent / str(base)).resolve()
    if base_path in seen:
        raise ValueError(f"{path}: base {base} leads back to itself")
    return _merge(read_config_file(base_path, (*seen, path.resolve())), data)


ESTIMATOR_TASK = "blur-estimator"
"""The ``task:`` of a config that trains the blur estimator (``training/blur_estimator.py``), not a restorer."""


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """A YAML config (``base: other.yaml`` starts from another file's settings, mappings merged key by key),
    then ``a.b=value`` overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        data = read_config_file(path)
    data = copy.deepcopy(data)
    for assignment in overrides or []:
        apply_override(data, assignment)
    where = str(path) if path else "config"
    if data.get("task") == ESTIMATOR_TASK:
        raise ValueError(f"{where}: a blur estimator's config; train it with `swintormer estimator train --config`")
    data["config_file"] = str(path) if path else None
    return from_data(TrainConfig, data, where)


def dump_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config (atomically: a kill leaves the old file or the new one)."""
    from ..io import atomic_write_bytes

    atomic_write_bytes(path, yaml.safe_dump(_plain(config.to_dict()), sort_keys=False).encode())


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def recipe_configs(recipe: str | Path, root: str | Path = ".") -> list[Path]:
    """The training configs a recipe runs, in order: the config itself, or each ``swintormer train --config X`` of
    a shell script of legs (``configs/tiny-channel-latent.sh``); paths relative to ``root``."""
    import re

    path = Path(root) / recipe
    if path.suffix != ".sh":
        return [path]
    legs = re.findall(r"swintormer\s+train\s+--config\s+(\S+)", path.read_text())
    if not legs:
        raise ValueError(f"{recipe}: a recipe script with no `swintormer train --config` line")
    return [Path(root) / leg for leg in legs]
