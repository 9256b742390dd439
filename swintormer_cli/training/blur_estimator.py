"""Training the blur estimator on the radius maps the training degradation makes with every blurred crop.

Each step blurs a batch of sharp crops with the ``lens`` recipe or a uniform disk (wider radii than the
restorer trains on: the estimator must tell 0 from 16 px), and the network learns ``log(1 + |radius|)`` at
1/4 resolution with an L1 loss. In a layered scene the occluding layer's own radius is the target where it
stands. Steps are pure functions of (seed, step), so a resumed run ends with the same weights as an
uninterrupted one.

    swintormer estimator train --config configs/blur-estimator.yaml [--resume auto]
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config_dict import DictConfig, from_data
from ..data.datasets import SharpImages, sample_generator, step_seed
from ..data.degradation import Degradation, DegradationConfig
from ..models.blur_estimator import BlurEstimator, BlurEstimatorConfig, save_estimator
from .checkpoints import checkpoint_folder, staged
from .config import ESTIMATOR_TASK, apply_override, read_config_file

log = logging.getLogger("swintormer.train")

EMA_FILE = "estimator.safetensors"
"""The EMA weights in each checkpoint folder, in the estimator's own file format (what ``weights export`` takes)."""


def last_weights(run_dir: str | Path) -> Path:
    """The EMA weights of a run's last checkpoint."""
    return Path(run_dir) / "checkpoints" / "last" / EMA_FILE


@dataclass
class EstimatorTrainConfig(DictConfig):
    task: str = ESTIMATOR_TASK
    """Marks the file as a blur estimator's config (``swintormer train`` refuses it, naming this command)."""
    data: list[str] = field(default_factory=lambda: ["../shared/data/train"])
    output_dir: str = "runs/blur-estimator"
    estimator: BlurEstimatorConfig = field(default_factory=BlurEstimatorConfig)
    steps: int = 4000
    batch_size: int = 8
    crop_size: int = 192
    crop_scale: tuple[float, float] = (0.35, 1.0)
    """Photos are shrunk by a random factor in this range before cropping (more content per crop)."""
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    ema: float = 0.998
    disk_fraction: float = 0.3
    """Share of steps blurred with uniform disks (the ``disk`` recipe) instead of the ``lens`` model."""
    max_radius: tuple[float, float] = (0.0, 24.0)
    """Largest radius of a crop. Past the estimator's own ``max_radius`` the target is held at it: the network
    learns to say "at least that" for blur it cannot measure, which hands it to the next pyramid level."""
    read_noise: tuple[float, float] = (0.0005, 0.012)
    jpeg_probability: float = 0.3
    bayer_probability: float = 0.2
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 50

    def __post_init__(self):
        if isinstance(self.estimator, dict):
            self.estimator = BlurEstimatorConfig.from_dict(self.estimator)
        self.crop_scale = (float(self.crop_scale[0]), float(self.crop_scale[1]))
        self.max_radius = (float(self.max_radius[0]), float(self.max_radius[1]))
        self.read_noise = (float(self.read_noise[0]), float(self.read_noise[1]))
        if self.task != ESTIMATOR_TASK:
            raise ValueError(f"task must be {ESTIMATOR_TASK!r}, got {self.task!r}")
        if self.steps < 1 or self.batch_size < 1 or self.crop_size < 16:
            raise ValueError("steps and batch_size must be at least 1 and crop_size at least 16")

    def degradations(self) -> tuple[Degradation, Degradation]:
        """(lens, disk): the two blurs a step is made with; both reach the same largest radius."""
        common = dict(
            max_radius=self.max_radius,
            read_noise=self.read_noise,
            jpeg_probability=self.jpeg_probability,
            bayer_probability=self.bayer_probability,
        )
        lens = DegradationConfig(recipe="lens", **common)
        disk = DegradationConfig(
            recipe="disk",
            depth_weights={"blobs": 0.5, "plane": 0.5, "layered": 0.0},
            min_radius_fraction=(0.0, 1.0),
            shot_noise=(0.0, 0.0),
            **common,
        )
        return Degradation(lens), Degradation(disk)


def load_estimator_config(path: str | Path, overrides: list[str] = ()) -> EstimatorTrainConfig:
    """A YAML config with ``--set key=value`` overrides (dotted keys reach into ``estimator``), read as
    ``swintormer train`` reads its configs."""
    data = copy.deepcopy(read_config_file(Path(path)))
    for assignment in overrides:
        apply_override(data, assignment)
    return from_data(EstimatorTrainConfig, data, str(path))


def target_radius(batch, margin: int) -> torch.Tensor:
    """|radius| per pixel with the occluding layer's radius where it stands, margin cut off."""
    radius = batch.radius.abs()
    if batch.foreground is not None:
        fg = batch.foreground_radius.abs()[:, None, None, None].expand_as(radius)
        radius = torch.where(batch.foreground > 0.5, fg, radius)
    return radius[..., margin : radius.shape[-2] - margin, margin : radius.shape[-1] - margin]


def make_batch(cfg: EstimatorTrainConfig, data: SharpImages, degradations, step: int):
    """(blurry, log1p radius at 1/4 resolution) of one step."""
    lens, disk = degradations
    base = step * cfg.batch_size
    sharp = torch.stack([data[base + j] for j in range(cfg.batch_size)])
    g = torch.Generator().manual_seed(step_seed(cfg.seed, 0, step, salt=1))
    use_disk = float(torch.rand(1, generator=sample_generator(cfg.seed, step))) < cfg.disk_fraction
    degradation = disk if use_disk else lens
    out = degradation(sharp, g)
    m = data.margin
    blurry = out.blurry[..., m : out.blurry.shape[-2] - m, m : out.blurry.shape[-1] - m]
    radius = target_radius(out, m)
    h, w = radius.shape[-2:]
    pooled = F.adaptive_avg_pool2d(radius, (math.ceil(h / 4), math.ceil(w / 4)))
    return blurry.contiguous(), torch.log1p(pooled.clamp(max=cfg.estimator.max_radius))


def train_estimator(cfg: EstimatorTrainConfig, resume: str | None = None, config_file: str | None = None) -> Path:
    """Train (or resume) a blur estimator; returns the run folder (its EMA weights: ``last_weights(run)``)."""
    run = Path(cfg.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    torch.manual_seed(cfg.seed)
    net = BlurEstimator(cfg.estimator)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, elapsed = 0, 0.0
    if resume:
        folder = checkpoint_folder(run, resume)
        if (folder / "state.pt").is_file():
            state = torch.load(folder / "state.pt", weights_only=True)
            net.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["optimizer"])
            start, elapsed = state["step"], state["elapsed_s"]
            log.info("resumed %s at step %d", run, start)
        elif resume != "auto":
            raise FileNotFoundError(f"{folder}: no estimator checkpoint to resume from")
    if start >= cfg.steps:
        log.info("%s: already at step %d of %d, nothing to do", run, start, cfg.steps)
        return run
    ds = cfg.degradations()
    margin = max(d.config.margin for d in ds)
    data = SharpImages(cfg.data, cfg.crop_size, margin=margin, scale=cfg.crop_scale, seed=cfg.seed)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

    metrics = (run / "metrics.jsonl").open("a")
    t0, losses = time.perf_counter(), []
    for step in range(start, cfg.steps):
        blurry, target = make_batch(cfg, data, ds, step)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = F.l1_loss(net(blurry), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters(), strict=True):
                e.lerp_(p, 1 - cfg.ema)
        losses.append(loss.item())
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            record = {
                "step": done,
                "loss": sum(losses) / len(losses),
                "lr": lr_at(step),
                "elapsed_s": elapsed + now - t0,
            }
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            log.info("step %d  loss %.4f  lr %.2e", done, record["loss"], record["lr"])
            losses = []
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            total = elapsed + time.perf_counter() - t0
            state = {
                "model": net.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict(),
                "step": done,
                "elapsed_s": total,
            }
            training = {"steps": done, "elapsed_s": round(total, 1), "config": config_file, "data": cfg.data}
            with staged(run / "checkpoints" / "last") as staging:
                torch.save(state, staging / "state.pt")
                save_estimator(staging / EMA_FILE, ema, training)
    metrics.close()
    return run
