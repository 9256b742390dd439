"""A run's data beyond its training crops: its validation sets, and for the ``ldm-sr`` prior the frozen prior
itself and each training and validation image's map, checked in the cache (``prior/cache.py``) or made there
before the first step.

Several processes (torchrun) share the map making: each makes the maps of every WORLD_SIZE-th image, then, after
a barrier, every process checks them all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..data.datasets import PairedImages, training_data
from ..evaluation.datasets import EvalSet, dpdd_set, pairs_set
from ..prior.cache import CacheReport, MapItem, PriorMapCache
from ..prior.ldm_sr import LDMSuperResolutionPrior
from . import distributed
from .config import TrainConfig

log = logging.getLogger("swintormer.train")


def load_frozen_prior(config: TrainConfig) -> LDMSuperResolutionPrior:
    """The config's ``ldm-sr`` prior, from its folder or from the Hub at its revision (the commit is recorded)."""
    p = config.prior
    try:
        return LDMSuperResolutionPrior.from_pretrained(p.source or LDMSuperResolutionPrior.default_source, p.revision)
    except Exception as exc:
        from ..io import one_line

        where = p.source or LDMSuperResolutionPrior.default_source
        raise ValueError(f"cannot load the ldm-sr prior from {where} ({type(exc).__name__}: {one_line(exc)})") from exc


def map_cache(config: TrainConfig, prior: LDMSuperResolutionPrior, device=None) -> PriorMapCache:
    return PriorMapCache(prior, config.prior.maps, config.prior.cache_dir, device)


def validation_sets(config: TrainConfig) -> dict[str, EvalSet]:
    """The config's validation sets by name, each cut to ``validation.max_images``."""
    v = config.validation
    out = {}
    for root in v.sets:
        eval_set = dpdd_set(root, config.data.views, v.split) if v.kind == "dpdd" else pairs_set(root)
        out[_set_name(root, out)] = replace(eval_set, items=eval_set.items[: v.max_images], references={})
    return out


def _set_name(root: str, taken: dict) -> str:
    name = Path(root).name
    return name if name not in taken else f"{name}-{len(taken)}"


def training_items(dataset: PairedImages) -> list[MapItem]:
    return [
        MapItem(root, tuple(sources), dataset.bits)
        for (sources, _), root in zip(dataset.pairs, dataset.roots, strict=True)
    ]


def validation_items(eval_set: EvalSet) -> list[MapItem]:
    return [MapItem(eval_set.root, tuple(item.sources), eval_set.bits) for item in eval_set.items]


@dataclass
class RunMaps:
    """The map files of a run, in the order of its training pairs and of each validation set's images."""

    train: list[Path | None]
    validation: dict[str, list[Path | None]] = field(default_factory=dict)
    report: CacheReport = field(default_factory=CacheReport)


def prepare(
    config: TrainConfig,
    prior: LDMSuperResolutionPrior,
    device: torch.device | str | None = None,
    dataset: PairedImages | None = None,
    sets: dict[str, EvalSet] | None = None,
) -> RunMaps:
    """Check (or make) the maps of the run's training pairs and validation images, shared among the processes."""
    info = distributed.launch_info()
    cache = map_cache(config, prior, device)
    if dataset is None:
        d = config.data
        dataset, _ = training_data(d.kind, d.roots, d.crop_size, views=d.views, seed=config.seed, cache=False)
    sets = validation_sets(config) if sets is None else sets
    groups = {"": training_items(dataset)} | {name: validation_items(s) for name, s in sets.items()}
    report = CacheReport()
    if info.enabled:  # each process makes its share, then all check all
        for items in groups.values():
            report.add(cache.ensure_all(items, info.rank, info.world)[1])
        distributed.barrier()
    paths: dict[str, list[Path | None]] = {}
    for name, items in groups.items():
        paths[name], part = cache.ensure_all(items)
        if info.enabled:  # all were checked or made in the first pass: only a failure is news here
            part.reused = 0
        report.add(part)
    if info.is_main:
        share = " (this process's share)" if info.enabled else ""
        log.info("%s%s, in %s", report, share, cache.folder_for(Path(config.data.roots[0])))
    train = paths.pop("")
    return RunMaps(train, paths, report)


def cache_maps(config: TrainConfig, device: str | None = None) -> RunMaps:
    """What ``swintormer prior cache`` does, and ``train`` does first: load the config's ldm-sr prior and check or
    make the map of every training and validation image (shared among the processes of a torchrun launch)."""
    from ..inference.device import resolve_device

    if config.prior.kind != "ldm-sr":
        raise ValueError(
            f"prior.kind is {config.prior.kind!r}: only the ldm-sr prior has per-image maps to cache "
            "(the latent prior is trained with the network and sampled tile by tile)"
        )
    info = distributed.launch_info()
    where = resolve_device(distributed.rank_device(device or config.device, info))
    distributed.init(info, where)
    try:
        prior = load_frozen_prior(config).to(where)
        return prepare(config, prior, where)
    finally:
        distributed.shutdown()


__all__ = ["RunMaps", "cache_maps", "load_frozen_prior", "map_cache", "prepare", "training_items", "validation_items"]
