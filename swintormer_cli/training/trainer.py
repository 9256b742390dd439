"""The training loop: data -> on-device degradation -> stage loss -> AdamW, EMA, checkpoints, validation.

A run directory holds:

    config.yaml                 the resolved configuration
    metrics.jsonl               one JSON object per logged step and per validation
    checkpoints/last/           model.safetensors (raw weights), ema.safetensors (EMA weights, what is
                                exported and validated), state.pt (optimizer, step, stage, RNG)
    checkpoints/best/           the EMA weights with the best validation PSNR so far

Every random draw of step s comes from generators seeded by (seed, rank, s), so ``--resume`` continues
exactly where the run stopped: N steps straight and N/2 + resume give the same weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from ..checkpoint import init_from_file, load_model
from ..data.datasets import (
    DegradingCollate,
    IndexedSamples,
    PairedSample,
    StepPairs,
    StepSampler,
    degrade_crops,
    step_seed,
    training_data,
)
from ..data.degradation import Degradation, DegradationConfig
from ..inference.device import prepare_device, resolve_device, resolve_precision
from ..models import Swintormer, preset
from ..prior import LatentPrior, LatentPriorConfig
from ..prior.ldm_sr import CHANNELS as LDM_SR_CHANNELS
from ..progress import Bars
from . import distributed, run_data
from .checkpoints import checkpoint_folder, truncate_metrics, write_checkpoint
from .config import TrainConfig, dump_config
from .stages import StageLoss, set_trainable

log = logging.getLogger("swintormer.train")
# Stages whose restorer reads the target encoder's latent (a latent prior's stage 1).
TARGET_LATENT_STAGES = ("encoder", "restorer")
# Below this the target latent is taken for a constant: a saturated tanh gives exactly 0, a working encoder's latent
# varies by hundredths or more.
CONSTANT_LATENT_SPREAD = 1e-3


def _due(step: int, every: int, last: bool) -> bool:
    """Whether a periodic action (log, validation, checkpoint) runs at this step; ``every: 0`` means only at
    the last step."""
    return last or (every > 0 and step % every == 0)


def resolve_model_file(spec: str) -> Path:
    """``init_from`` as a path to a model file, or else the name of a registered model."""
    path = Path(spec).expanduser()
    if path.exists() or path.suffix == ".safetensors" or os.sep in spec:
        return path
    from ..weights import resolve_model

    return resolve_model(model=spec).path


def build_networks(config: TrainConfig) -> tuple[Swintormer, LatentPrior | None]:
    """The restorer, and the prior that trains with it (``latent``; None for ``none`` and for the frozen ``ldm-sr``,
    which ``run_data.load_frozen_prior`` loads: the network only needs the depth of its maps)."""
    in_views = 2 if (config.data.kind == "dpdd" and config.data.views == "dual") else 1
    prior = None
    overrides = dict(config.model.overrides)
    overrides["in_views"] = in_views
    if config.prior.kind == "latent":
        prior = LatentPrior(LatentPriorConfig.from_dict({**config.prior.config, "in_views": in_views}))
        overrides.update(prior_channels=prior.channels, prior_scale=prior.scale)
    elif config.prior.kind == "ldm-sr":
        # The map is at the image's resolution: it modulates the stem (1/2) and, by default, the level at 1/4,
        # a second scale (a choice, not a measured one; model.overrides.prior_scale changes it).
        overrides["prior_channels"] = LDM_SR_CHANNELS
        overrides.setdefault("prior_scale", 4)
    model = Swintormer(preset(config.model.preset, **overrides))
    return model, prior


def ema_with_warmup(decay: float):
    """EMA whose decay grows as (1 + n) / (10 + n) up to ``decay``: without the warm-up, a 0.999 average
    still holds 37% of the random initial weights after 1000 steps (13% after 2000)."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(averaged, current, 1 - d)

    return update


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, ``hold_steps`` at ``lr``, then cosine from ``lr`` to ``min_lr`` over the current stage.

    The warm-up takes at most a quarter of a stage, so a short stage still gets its decay."""
    o = config.optim
    first, end = config.stage_bounds(config.stage_at(step))
    local, length = step - first, max(1, end - first)
    warmup = min(o.warmup_steps, max(1, length // 4))  # 0: none
    if local < warmup:
        return o.lr * (local + 1) / warmup
    if local < warmup + o.hold_steps:
        return o.lr
    decay_start = min(warmup + o.hold_steps, length)
    progress = (local - decay_start) / max(1, length - decay_start)
    return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class Batch:
    blurry: torch.Tensor
    sharp: torch.Tensor
    prior: torch.Tensor | None = None
    """Crops of the blurry images' cached prior maps (ldm-sr)."""


class Trainer:
    def __init__(self, config: TrainConfig, resume: str | None = None, progress: bool | None = None):
        self.config = config
        self.dist = distributed.launch_info()
        self.device = resolve_device(distributed.rank_device(config.device, self.dist))
        distributed.init(self.dist, self.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.run_dir = Path(config.output_dir)
        self.progress = sys.stdout.isatty() if progress is None else progress
        # The initial weights come from the seed too: one config gives the same model again.
        torch.manual_seed(config.seed)
        self.model, self.prior = build_networks(config)
        # The paper's prior, frozen: it makes the maps (once per image, cached) and is recorded in the model files.
        self.map_prior = run_data.load_frozen_prior(config) if config.prior.kind == "ldm-sr" else None
        if self.map_prior is not None and self.map_prior.channels != self.model.config.prior_channels:
            raise ValueError(
                f"the ldm-sr prior from {self.map_prior.source} makes {self.map_prior.channels}-channel maps; "
                f"the network is built for {self.model.config.prior_channels}"
            )
        self.maps: run_data.RunMaps | None = None
        if config.init_from:
            # Before the average is made, so it starts from these weights too; a resume overwrites both.
            init_from_file(
                self.model,
                self.prior or self.map_prior,
                resolve_model_file(config.init_from),
                relearn_target_encoder=config.has_stage("encoder"),
            )
        self.memory_format = prepare_device(self.device)  # as at inference: channels-last on the CPU
        self.model.to(self.device, memory_format=self.memory_format)
        if self.prior is not None:
            self.prior.to(self.device, memory_format=self.memory_format)
        if self.map_prior is not None:
            self.map_prior.to(self.device)
        self.networks = nn.ModuleDict({"restorer": self.model, **({"prior": self.prior} if self.prior else {})})
        self.ema = AveragedModel(self.networks, multi_avg_fn=ema_with_warmup(config.optim.ema), use_buffers=False)
        self.loss_module = StageLoss(
            self.model,
            self.prior,
            config.prior.train_sample_steps,
            config.prior.latent_loss_weight,
            config.loss.frequency_weight,
        )
        self.degradation = (
            Degradation(DegradationConfig.from_dict(config.degradation)) if config.data.kind == "sharp" else None
        )
        self.step = 0
        self.stage: str | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.best_psnr = -math.inf
        self._warned_constant_latent = False
        self.autocast_dtype = self._autocast_dtype()
        self._val_sets: dict | None = None
        if resume:
            self._resume(resume)

    # -- set-up ---------------------------------------------------------------------------------------
    def _autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for plain fp32; ``auto`` decides as inference does (device.py)."""
        dtype = resolve_precision(self.config.precision, self.device)
        return None if dtype == torch.float32 else dtype

    def _margin(self) -> int:
        return self.degradation.config.margin if self.degradation is not None else 0

    def _loader(self, start: int) -> DataLoader:
        c = self.config
        data = c.data
        dataset, collate = training_data(
            data.kind,
            data.roots,
            data.crop_size,
            margin=self._margin(),
            scale=data.scale,
            views=data.views,
            seed=c.seed,
            cache=data.cache,
        )
        if self.map_prior is not None:
            # Every training and validation image's map, checked in the cache or made there, before any step.
            self.maps = run_data.prepare(c, self.map_prior, self.device, dataset, self._validation_sets())
            dataset.prior_maps = self.maps.train
        sampler = StepSampler(start, c.max_steps, c.batch_size, self.dist.rank, self.dist.world)
        if self.degradation is not None and self.device.type == "cpu":
            # On a CPU the blur is made as the crops load (in the loader's workers, if any); on a GPU it is
            # made there, from the crops (``_make_batch``).
            dataset = IndexedSamples(dataset)
            collate = DegradingCollate(
                self.degradation,
                c.seed,
                c.batch_size,
                self.dist.rank,
                self.dist.world,
                self.memory_format,
            )
        return DataLoader(
            dataset,
            batch_size=c.batch_size,
            sampler=sampler,
            num_workers=data.workers,
            collate_fn=collate,
            persistent_workers=False,
        )

    def _generator(self, step: int, salt: int = 0) -> torch.Generator:
        seed = step_seed(self.config.seed, self.dist.rank, step, salt)
        return torch.Generator(device=self.device).manual_seed(seed)

    def _make_batch(self, raw, step: int) -> Batch:
        fmt = self.memory_format
        if isinstance(raw, StepPairs):
            if raw.step != step:
                raise RuntimeError(f"the loader gave step {raw.step}'s batch at step {step}")
            return Batch(raw.blurry.to(self.device), raw.sharp.to(self.device))
        if isinstance(raw, PairedSample):
            source, target = raw.source.to(self.device), raw.target.to(self.device)
            prior = raw.prior.to(self.device).contiguous(memory_format=fmt) if raw.prior is not None else None
            return Batch(source.contiguous(memory_format=fmt), target.contiguous(memory_format=fmt), prior)
        sharp = raw.to(self.device, non_blocking=True)
        return Batch(*degrade_crops(self.degradation, sharp, self._generator(step, salt=1), fmt))

    def _enter_stage(self, stage: str) -> None:
        if self.stage is not None and stage != self.stage:
            # A new stage starts from the averaged weights: they are what the next stage must build on.
            self.networks.load_state_dict(self.ema.module.state_dict())
            # And the average starts again from them: a 0.999 average carried across the boundary would keep
            # most of the untrained prior through a stage of a few hundred steps (and export it).
            self.ema.n_averaged.zero_()
        params = set_trainable(stage, self.model, self.prior)
        o = self.config.optim
        self.optimizer = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        self.loss_module.stage = stage
        self.stage = stage
        self.trainable = params
        self.wrapped = self.loss_module
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.loss_module, device_ids=ids)

    # -- checkpoints ----------------------------------------------------------------------------------
    def _training_record(self) -> dict:
        c = self.config
        record = {
            "run": c.name,
            "step": self.step,
            "stage": self.stage,
            "crop_size": c.data.crop_size,
            "window": c.validation_window,
            **({"shift": c.validation.shift} if c.validation.shift else {}),
            **({"prior_steps": c.validation.prior_steps} if c.validation.prior_steps and self.prior else {}),
            "data": c.data.roots,
            "data_kind": c.data.kind,
            "degradation": c.degradation.get("recipe", "lens") if c.data.kind == "sharp" else None,
            "seed": c.seed,
        }
        if c.config_file:
            record["config"] = c.config_file
        if c.data.kind == "dpdd":
            record["views"] = c.data.views
        if self.map_prior is not None:  # how the maps it learnt from were sampled
            m = c.prior.maps
            eta = self.map_prior.default_eta if m.eta is None else m.eta
            record["prior_maps"] = {"steps": m.steps, "sampler": m.sampler, "eta": eta, "seed": m.seed}
        return record

    def save(self, name: str = "last") -> Path:
        """Write a checkpoint folder as a whole: its three files always belong to the same step."""
        folder = self.run_dir / "checkpoints" / name
        if not self.dist.is_main:
            return folder
        ema_model = self.ema.module["restorer"]
        ema_prior = self.ema.module["prior"] if self.prior is not None else self.map_prior
        state = {
            "step": self.step,
            "stage": self.stage,
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "ema_n_averaged": self.ema.n_averaged,
            "best_psnr": self.best_psnr,
            "torch_rng": torch.get_rng_state(),
        }
        raw = (self.model, self.prior if self.prior is not None else self.map_prior)
        write_checkpoint(folder, raw, (ema_model, ema_prior), self._training_record(), state)
        return folder

    def _resume(self, spec: str) -> None:
        folder = checkpoint_folder(self.run_dir, spec)
        if not (folder / "state.pt").is_file():
            if spec == "auto":
                start = f"the weights of {self.config.init_from}" if self.config.init_from else "scratch"
                log.info("no checkpoint in %s: starting from %s", folder, start)
                return
            raise FileNotFoundError(f"{folder}: no state.pt to resume from")
        raw = load_model(folder / "model.safetensors")
        ema = load_model(folder / "ema.safetensors")
        self.model.load_state_dict(raw.model.state_dict())
        self.ema.module["restorer"].load_state_dict(ema.model.state_dict())
        if self.prior is not None:
            self.prior.load_state_dict(raw.prior.state_dict())
            self.ema.module["prior"].load_state_dict(ema.prior.state_dict())
        state = torch.load(folder / "state.pt", map_location=self.device, weights_only=True)
        self.step = int(state["step"])
        if self.dist.is_main:  # the steps after the checkpoint run again: their records go
            truncate_metrics(self.run_dir / "metrics.jsonl", self.step)
        self.best_psnr = float(state["best_psnr"])
        self.ema.n_averaged.copy_(state["ema_n_averaged"])
        torch.set_rng_state(state["torch_rng"].cpu())
        saved_stage = state["stage"]
        if saved_stage is not None:
            if self.step >= self.config.max_steps or self.config.stage_at(self.step) == saved_stage:
                self._enter_stage(saved_stage)
                if state["optimizer"] is not None:
                    self.optimizer.load_state_dict(state["optimizer"])
            else:
                # Saved on a stage boundary: the loop enters the next stage as an uninterrupted run does.
                self.stage = saved_stage
        log.info("resumed from %s at step %d", folder, self.step)

    # -- validation -----------------------------------------------------------------------------------
    def _validation_sets(self) -> dict:
        if self._val_sets is None:
            self._val_sets = run_data.validation_sets(self.config)
        return self._val_sets

    def validate(self) -> dict:
        """Score the EMA weights on each validation set with the evaluation code (as ``swintormer eval`` does
        on a paired folder or DPDD): PSNR, SSIM, the input's PSNR, and gain-compensated PSNR when asked for.
        With the ldm-sr prior, each image's map comes from the cache, as the training crops' do."""
        from ..evaluation.runner import Setting, evaluate
        from ..inference import DeblurPipeline
        from ..prior.cache import read_map

        v = self.config.validation
        results = {}
        model = self.ema.module["restorer"]
        prior = self.ema.module["prior"] if self.prior is not None else self.map_prior
        pipe = DeblurPipeline(
            model,
            prior,
            window=self.config.validation_window,
            shift=v.shift,
            **({"prior_steps": v.prior_steps} if v.prior_steps else {}),
            device=self.device,
            precision="fp32",
            memory_budget="2GiB",
        )
        setting = Setting(pipe.settings.window, pipe.settings.shift, pipe.settings.blend)
        for name, eval_set in self._validation_sets().items():
            maps = None
            if self.maps is not None:
                paths = self.maps.validation[name]

                def maps(i: int, paths=paths):
                    return read_map(paths[i])

            report = evaluate(eval_set, lambda _: pipe, [setting], gain_compensate=v.gain_compensate, prior_maps=maps)
            given, restored = report.rows[0].averages["all"], report.rows[1].averages["all"]
            scores = {"psnr": restored["psnr"], "ssim": restored["ssim"], "input_psnr": given["psnr"]}
            if v.gain_compensate:
                scores["gc_psnr"] = restored["gc_psnr"]
            results[name] = scores
        model.train()
        if self.prior is not None:  # the averaged prior that trains (a frozen ldm-sr prior stays in eval mode)
            prior.train()
        return results

    # -- the loop -------------------------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _check_spread(self, spread: float) -> None:
        if spread < CONSTANT_LATENT_SPREAD and not self._warned_constant_latent and self.dist.is_main:
            self._warned_constant_latent = True
            log.warning(
                "step %d: the prior's target latent is the same for every image and position (spread %.2g); "
                "the restorer can learn nothing from it (a saturated target encoder: see "
                "LatentPriorConfig.target_norm)",
                self.step,
                spread,
            )

    def run(self) -> Path:
        c = self.config
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            dump_config(c, self.run_dir / "config.yaml")
        if self.step >= c.max_steps:
            log.info("nothing to do: already at step %d of %d", self.step, c.max_steps)
            return self.run_dir
        self.model.train()
        if self.prior is not None:
            self.prior.train()
        loader = self._loader(self.step)
        bars = Bars(
            "[bold]train[/] {task.fields[stage]}",
            "loss {task.fields[loss]:.5f} lr {task.fields[lr]:.2e} {task.fields[rate]:.2f} it/s",
            enabled=self.progress and self.dist.is_main,
        )
        bar = bars.add("train", total=c.max_steps, completed=self.step, loss=0.0, lr=0.0, stage="", rate=0.0)
        window = _LossWindow(self.step)
        try:
            for raw in loader:
                batch, value, lr = self._train_step(raw)
                window.add(value)
                bars.update(bar, completed=self.step, loss=value, lr=lr, stage=self.stage, rate=window.rate(self.step))
                last = self.step == c.max_steps
                if _due(self.step, c.log_every, last):
                    self._log_window(window, lr, batch, quiet=bars.enabled)
                if c.validation.sets and _due(self.step, c.validation.every, last) and self.dist.is_main:
                    self._validate_and_keep_best(quiet=bars.enabled)
                if _due(self.step, c.checkpoint_every, last):
                    self.save("last")
                distributed.barrier()
        finally:
            bars.close()
        return self.run_dir

    def _train_step(self, raw) -> tuple[Batch, float, float]:
        """One optimisation step on a loader's batch: (the batch, its loss, the learning rate)."""
        c = self.config
        stage = c.stage_at(self.step)
        if stage != self.stage:
            self._enter_stage(stage)
        lr = learning_rate(c, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self._make_batch(raw, self.step)
        autocast = self.autocast_dtype is not None
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32, enabled=autocast):
            loss = self.wrapped(batch.blurry, batch.sharp, self._generator(self.step, salt=2), batch.prior)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.trainable, c.optim.grad_clip)
        self.optimizer.step()
        self.ema.update_parameters(self.networks)
        self.step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {self.step}")
        return batch, value, lr

    def _log_window(self, window: _LossWindow, lr: float, batch: Batch, quiet: bool) -> None:
        """The mean loss and speed since the last log line, to metrics.jsonl (and stdout without bars)."""
        record = {"step": self.step, "stage": self.stage, "lr": lr, **window.take()}
        if self.stage in TARGET_LATENT_STAGES and isinstance(self.prior, LatentPrior):
            record["latent_spread"] = self.prior.target_spread(batch.sharp, batch.blurry)
            self._check_spread(record["latent_spread"])
        self._log(record)
        if not quiet and self.dist.is_main:
            print(_plain_line(record, self.config.max_steps), flush=True)

    def _validate_and_keep_best(self, quiet: bool) -> None:
        scores = self.validate()
        self._log({"step": self.step, "validation": scores})
        if not quiet:
            print(f"validation at step {self.step}: {json.dumps(scores)}", flush=True)
        first = next(iter(scores.values()))
        if first["psnr"] > self.best_psnr:
            self.best_psnr = first["psnr"]
            self.save("best")


class _LossWindow:
    """The losses since the last log line, and the run's speed."""

    def __init__(self, step: int):
        self.started = self.window_start = time.time()
        self.first_step = step
        self.total, self.count = 0.0, 0

    def add(self, loss: float) -> None:
        self.total += loss
        self.count += 1

    def rate(self, step: int) -> float:
        """Steps per second since the run (this process) started."""
        return (step - self.first_step) / max(1e-9, time.time() - self.started)

    def take(self) -> dict:
        """The window's mean loss, steps/s and the elapsed time; the window starts again."""
        now = time.time()
        record = {
            "loss": self.total / max(1, self.count),
            "steps_per_s": self.count / max(1e-9, now - self.window_start),
            "elapsed_s": now - self.started,
        }
        self.total, self.count, self.window_start = 0.0, 0, now
        return record


def _plain_line(record: dict, total: int) -> str:
    eta = (total - record["step"]) / max(record["steps_per_s"], 1e-9)
    spread = f" latent spread {record['latent_spread']:.3f}" if "latent_spread" in record else ""
    return (
        f"step {record['step']}/{total} [{record['stage']}] loss {record['loss']:.5f} lr {record['lr']:.2e}"
        f"{spread} {record['steps_per_s']:.2f} it/s ETA {eta / 60:.1f} min"
    )


def train(config: TrainConfig, resume: str | None = None, progress: bool | None = None) -> Path:
    trainer = Trainer(config, resume=resume, progress=progress)
    try:
        return trainer.run()
    finally:
        distributed.shutdown()


__all__ = ["Trainer", "build_networks", "learning_rate", "train"]
