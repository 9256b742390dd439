"""DeblurPipeline: weights -> prior -> overlapping tiles -> merged image, in a bounded memory budget.

The whole image and the merge accumulators stay in CPU memory; tiles are cut on the CPU, streamed to the
device in batches, restored, and brought back. The batch size comes from the memory budget: one tile's peak
is measured, then the budget is filled with as many tiles as fit, halving on out-of-memory.

For a model with a diffusion prior, the sampling noise is drawn once for the whole image's latent grid
from ``seed`` and each tile takes its crop, so the result depends neither on the tile batch size nor on the
order tiles run in, and one seed gives the same image again. A prior sampled over the whole image (``ldm-sr``,
as the paper made its maps) gives one map for the image first, and each tile takes its crop of that.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import ModelBundle
from ..io import pixel_peak
from ..models import Swintormer
from ..models.blur_estimator import BlurEstimator
from ..prior import Prior, noise_draws
from ..tiling import Accumulator, Tile, TileGrid
from .device import precision_name, precision_reason, prepare_device, resolve_device, resolve_precision
from .memory import PeakMeter, default_budget, is_out_of_memory, parse_size, release_cached
from .scales import blur_map, largest_scale, needed_pixels, resize, scale_weights, scaled_size
from .settings import InferenceSettings, ModelDefaults, SettingError
from .strength import apply_strength, restore_weight

ProgressFn = Callable[[int, int], None]
# The most tiles one batch holds. On a CPU the network's throughput peaks at 4-8 tiles of 256 px and falls
# beyond (16: a third slower; the working set leaves the caches), so a large budget buys nothing there.
MAX_BATCH = {"cpu": 8}
MAX_BATCH_DEFAULT = 64


def _tensor(array: np.ndarray) -> torch.Tensor:
    """An HxWxC array (uint8, uint16 or float in [0, 1]) as a (C, H, W) float32 tensor in [0, 1]."""
    if array.ndim != 3:
        raise ValueError(f"expected an HxWxC image, got shape {array.shape}")
    return torch.from_numpy(array.astype(np.float32) / pixel_peak(array.dtype)).permute(2, 0, 1)


class DeblurPipeline:
    """Restore whole images of any size with a Swintormer (and its prior), tile by tile.

    >>> pipe = DeblurPipeline.from_pretrained()              # the default registered model
    >>> sharp = pipe(blurry)                                 # HxWx3 array in, same shape and dtype out
    """

    def __init__(
        self,
        model: Swintormer,
        prior: Prior | None = None,
        settings: InferenceSettings | None = None,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        memory_budget: int | str | None = None,
        model_defaults: ModelDefaults | None = None,
        name: str = "",
        estimator: BlurEstimator | None = None,
        **overrides,
    ):
        """``estimator``: the blur estimator that chooses the scales to restore at (``inference/scales.py``);
        without one, and with ``scale`` unset, images are restored at their own size.

        ``settings`` (or any of its fields given by keyword: ``window=512``, ``prior_steps=10``, ...)
        choose how the image is tiled and the prior sampled; ``InferenceSettings`` holds their defaults, which
        ``model_defaults`` (what a model file names for itself) override."""
        if model.config.prior_channels and prior is None:
            raise ValueError("this model was trained with a prior; pass it (load_model pairs them)")
        if prior is not None and not model.config.prior_channels:
            raise ValueError("a prior was given for a model built without one (prior_channels = 0)")
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.precision_note = precision_reason(precision, self.device)
        self.memory_format = prepare_device(self.device)
        self.model = model.to(self.device, memory_format=self.memory_format).eval()
        self.prior = prior.to(self.device).eval() if prior is not None else None
        # An unknown keyword is a TypeError here, as for any function.
        self.settings = replace(settings or InferenceSettings(), **overrides).resolve(
            min_window=model.config.min_window,
            model=model_defaults,
            default_eta=prior.default_eta if prior is not None else 0.0,  # ldm-sr: 1
            device=self.device,
        )
        if isinstance(memory_budget, str):
            memory_budget = parse_size(memory_budget)
        self.memory_budget = int(memory_budget) if memory_budget else default_budget(self.device)
        self.name = name
        self.estimator = estimator.to(self.device).eval() if estimator is not None else None
        if self.settings.keep_background_blur is not None and self.estimator is None:
            raise SettingError("keep_background_blur", "needs a blur estimator, and this model has none")
        self._batch_sizes: dict[tuple[int, int], int] = {}
        self.batch_size: int | None = None
        """Set to fix the tile batch size instead of measuring it from the memory budget."""
        self.last_tile_peak: int | None = None

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_bundle(cls, bundle: ModelBundle, settings: InferenceSettings | None = None, **kwargs) -> DeblurPipeline:
        kwargs.setdefault("model_defaults", bundle.inference_defaults)
        kwargs.setdefault("name", bundle.source)
        kwargs.setdefault("estimator", bundle.estimator)
        return cls(bundle.model, bundle.prior, settings, **kwargs)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path | None = None, *, weights: str | Path | None = None, **kwargs
    ) -> DeblurPipeline:
        """A registered model name (default: the registry's default), or with ``weights`` a model file's path
        (or a folder holding one)."""
        from ..weights import resolve_model

        resolved = resolve_model(model=None if weights else name_or_path, weights=weights or None)
        return cls.from_bundle(resolved.load(), **kwargs)

    # -- public API -----------------------------------------------------------------------------------
    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    def describe(self) -> dict:
        s = self.settings
        info = {
            "model": self.name,
            "device": str(self.device),
            "precision": self.precision,
            "precision_note": self.precision_note,
            "window": s.window,
            "shift": s.shift,
            "blend": s.blend,
            "memory_budget": self.memory_budget,
            "workers": self.workers,
            "prior": self.prior.kind if self.prior is not None else "none",
        }
        if self.prior is not None:
            info.update(prior_steps=s.prior_steps, sampler=s.sampler, eta=s.eta, seed=s.seed)
        info["scale"] = self.scale_mode
        info.update(strength=s.strength, keep_background_blur=s.keep_background_blur)
        if self.scale_mode == "auto":
            info.update(max_scale=s.max_scale, scale_radius=s.scale_radius)
        return info

    @property
    def scale_mode(self) -> str:
        """``auto`` (scales from the blur map), or the one scale every image is restored at (``1``, ``3``)."""
        s = self.settings
        if s.scale is not None:
            return f"{s.scale:g}"
        return "auto" if self.estimator is not None else "1"

    def blur_map(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The estimated defocus radius of each pixel of an image, in its pixels: (H, W). The image as ``__call__``
        takes it: a (C, H, W) tensor in [0, 1] or an HxWxC array. Needs a blur estimator (``from_pretrained`` loads
        the registered one)."""
        if self.estimator is None:
            raise ValueError("this pipeline has no blur estimator")
        x = image if isinstance(image, torch.Tensor) else _tensor(np.asarray(image))
        return blur_map(self.estimator, x, device=self.device)

    def scales_for(
        self, image: torch.Tensor, radius: torch.Tensor | None = None
    ) -> list[tuple[float, torch.Tensor | None]]:
        """(scale, per-pixel weight or None for everywhere) of each pass ``restore`` makes for this image."""
        s = self.settings
        height, width = image.shape[-2:]
        if s.scale is not None or self.estimator is None:
            return [(largest_scale(height, width, s.scale or 1.0), None)]
        max_scale = largest_scale(height, width, s.max_scale)
        if max_scale == 1.0:
            return [(1.0, None)]
        radius = self.blur_map(image) if radius is None else radius
        plan = scale_weights(radius, s.scale_radius, max_scale)
        return [(plan[0][0], None)] if len(plan) == 1 else plan

    def __call__(
        self,
        image: np.ndarray | torch.Tensor,
        progress: ProgressFn | None = None,
        prior_map: torch.Tensor | None = None,
        radius: torch.Tensor | None = None,
    ):
        """HxWxC array (uint8, uint16 or float in [0, 1]) or CxHxW float tensor -> the same kind back."""
        if isinstance(image, torch.Tensor):
            return self.restore(image, progress, prior_map, radius)
        array = np.asarray(image)
        scale = pixel_peak(array.dtype)  # 1 for floats: already in [0, 1]
        y = self.restore(_tensor(array), progress, prior_map, radius).permute(1, 2, 0).numpy()
        if scale == 1.0:
            return y.astype(array.dtype if np.issubdtype(array.dtype, np.floating) else np.float32)
        return np.round(y * scale).astype(array.dtype)

    def grid(self, height: int, width: int) -> TileGrid:
        return TileGrid(height, width, self.settings.window, self.settings.shift)

    def prior_map(self, image: torch.Tensor) -> torch.Tensor | None:
        """The whole-image prior map of a (C, H, W) image in [0, 1] with these settings, for a prior sampled over
        the whole image (None for any other): what ``restore`` cuts each tile's prior from."""
        if self.prior is None or not self.prior.whole_image:
            return None
        s = self.settings
        return self.prior.sample_map(
            image, steps=s.prior_steps, sampler=s.sampler, eta=s.eta, seed=s.seed, device=self.device
        )

    @torch.no_grad()
    def restore(
        self,
        image: torch.Tensor,
        progress: ProgressFn | None = None,
        prior_map: torch.Tensor | None = None,
        radius: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(3*in_views, H, W) float in [0, 1] on the CPU -> (3, H, W) float32 in [0, 1] on the CPU.

        ``prior_map``: for a prior sampled over the whole image, its map of this image when already made (training
        caches them); by default ``prior_map(image)`` makes it. ``radius``: the image's blur map when already
        made (``blur_map``), else made here when the scales, the strength or the kept blur need it."""
        expected = 3 * self.model.config.in_views
        if image.ndim != 3 or image.shape[0] != expected:
            raise ValueError(f"expected a ({expected}, H, W) tensor, got {tuple(image.shape)}")
        image = image.detach().to("cpu", torch.float32)
        s = self.settings
        source = image[:3]
        if s.strength == 0:
            return source.clone()
        if radius is None and self._needs_map(image):
            radius = self.blur_map(image)
        # __init__ refuses a kept background without an estimator, so the map is there when it is asked for.
        keep = restore_weight(radius, s.keep_background_blur) if s.keep_background_blur is not None else None
        restored = self._restore_scales(image, self.scales_for(image, radius), progress, prior_map, keep)
        if s.strength == 1 and keep is None:
            return restored
        if radius is None:  # no estimator: the blur the pass is meant for, everywhere
            radius = torch.tensor((s.scale or 1.0) * s.scale_radius)
        return apply_strength(source, restored, radius, s.strength, keep)

    def _needs_map(self, image: torch.Tensor) -> bool:
        s = self.settings
        if self.estimator is None:
            return False
        if s.keep_background_blur is not None or s.strength < 1:
            return True
        return s.scale is None and largest_scale(*image.shape[-2:], s.max_scale) > 1

    def _restore_scales(
        self,
        image: torch.Tensor,
        plan: list[tuple[float, torch.Tensor | None]],
        progress: ProgressFn | None,
        prior_map: torch.Tensor | None,
        keep: torch.Tensor | None,
    ) -> torch.Tensor:
        """The passes of ``plan`` (``scales_for``) merged; with ``keep`` (the restoration's weight, H x W), only
        where it is above 0, and the input elsewhere."""
        if plan == [(1.0, None)] and keep is None:
            return self._restore_tiles(image, progress, prior_map)
        _, height, width = image.shape
        wanted = None if keep is None else keep > 0
        # Each pass runs the tiles that reach a pixel weighing on it (every tile over such a pixel runs, so it
        # merges exactly as in a whole pass); the progress counts the tiles of all of them.
        sizes = [scaled_size(height, width, scale) for scale, _ in plan]
        runs = []
        for (_, weight), (h, w) in zip(plan, sizes, strict=True):
            reach = weight
            if wanted is not None:
                reach = wanted.float() if weight is None else weight * wanted
            needed = needed_pixels(reach, h, w)
            tiles = self.grid(h, w).tiles
            runs.append(tiles if needed is None else [t for t in tiles if bool(needed[t.slices].any())])
        total = sum(len(tiles) for tiles in runs)
        out = torch.zeros(3, height, width)
        offset = 0
        for (scale, weight), (h, w), tiles in zip(plan, sizes, runs, strict=True):
            if not tiles:
                continue
            step = None
            if progress is not None:
                step = lambda done, _total, offset=offset: progress(offset + done, total)  # noqa: E731
            small = resize(image, h, w)
            passed = self._restore_tiles(small, step, prior_map if scale == 1.0 else None, tiles)
            restored = resize(passed, height, width)
            out += restored if weight is None else restored * weight
            offset += len(tiles)
        out.clamp_(0, 1)
        return out if wanted is None else torch.where(wanted, out, image[:3])

    def _restore_tiles(
        self,
        image: torch.Tensor,
        progress: ProgressFn | None = None,
        prior_map: torch.Tensor | None = None,
        tiles: list[Tile] | None = None,
    ) -> torch.Tensor:
        """One pass over the image at its size: tiles restored and merged. ``tiles``: the grid's tiles to run
        (default all); pixels none of them covers come back 0."""
        _, height, width = image.shape
        grid = self.grid(height, width)
        tiles = grid.tiles if tiles is None else tiles
        if not tiles:
            return torch.zeros(3, height, width)
        acc = Accumulator(3, grid, self.settings.blend)
        if self.prior is not None and self.prior.whole_image:
            prior_map = self.prior_map(image) if prior_map is None else prior_map.to("cpu", torch.float32)
            if tuple(prior_map.shape) != (self.prior.channels, height, width):
                raise ValueError(
                    f"prior map has shape {tuple(prior_map.shape)}, expected {(self.prior.channels, height, width)}"
                )
            noise = None
        elif prior_map is not None:
            raise ValueError("a prior map was given, but this model's prior is sampled tile by tile")
        else:
            noise = self._noise_grid(grid.tiles)  # the whole grid's, whichever tiles run: the same draws
        guide = (noise, prior_map)
        key = (grid.tile_height, grid.tile_width)
        done = 0
        if not self.batch_size and key not in self._batch_sizes:
            # The first tile runs alone, measured; its output is kept like any other.
            acc.add(tiles[0], self._measure_first_tile(image, tiles[0], guide, key)[0])
            done = 1
            if progress is not None:
                progress(done, len(tiles))

        def chunks():
            i = done
            while i < len(tiles):
                # Read the batch size at each step: an out-of-memory retry may have lowered it. With
                # several workers and few tiles left, share them out rather than leave workers idle.
                batch = self.batch_size or self._batch_sizes[key]
                size = max(1, min(batch, -(-(len(tiles) - i) // self.workers)))
                yield tiles[i : i + size]
                i += size

        # Results are merged in tile order whatever order the workers finish in, so the sums, and the
        # output bytes, are the same run after run.
        for chunk, out in self._in_order(lambda c: self._run_fitting(image, c, guide, key), chunks()):
            for tile, tile_out in zip(chunk, out, strict=True):
                acc.add(tile, tile_out)
            done += len(chunk)
            if progress is not None:
                progress(done, len(tiles))
        return acc.result().clamp_(0, 1)

    @property
    def workers(self) -> int:
        """Tile batches run at once (``InferenceSettings.workers``). On a CPU they run in parallel, one thread
        each, rather than one batch at a time with all threads inside each operation: most of the network's
        operations are too small to split well (measured 1.2x on 2 cores, docs/speed.md). On a GPU the device
        is the parallelism."""
        return self.settings.workers

    @property
    def tile_batch(self) -> int:
        """The tile batch size in use (fixed, or the largest measured so far; 1 before any run)."""
        return self.batch_size or max(self._batch_sizes.values(), default=1)

    # -- internals ------------------------------------------------------------------------------------
    def _measure_first_tile(self, image: torch.Tensor, tile: Tile, guide, key: tuple[int, int]) -> torch.Tensor:
        """Run one tile alone, measuring its peak, and size the batches from the budget."""
        meter = PeakMeter(self.device)
        with meter.measure():
            out = self._run_fitting(image, [tile], guide, key)
        self.last_tile_peak = meter.peak
        # None: not measurable here, so one tile at a time. 0: the tile grew nothing, because it ran in memory
        # an earlier run left to the allocator (see keep_freed_memory), so the cap decides.
        fit = 1 if meter.peak is None else math.floor(self.memory_budget / (max(meter.peak, 1) * self.workers))
        self._batch_sizes[key] = max(1, min(fit, MAX_BATCH.get(self.device.type, MAX_BATCH_DEFAULT)))
        return out

    def _run_fitting(self, image: torch.Tensor, chunk: list[Tile], guide, key: tuple[int, int]) -> torch.Tensor:
        """Run a chunk of tiles; out of memory, run it again in halves and keep the smaller batch size.

        ``guide``: (the image's prior noise grid, its whole-image prior map), either or both None."""
        try:
            return self._run(image, chunk, guide)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried, smaller
            if not is_out_of_memory(exc):
                raise
            release_cached(self.device)
            if len(chunk) == 1:
                raise _tile_too_large(key, self.device) from exc
        half = len(chunk) // 2
        self._batch_sizes[key] = min(self._batch_sizes.get(key, half), half)
        if self.batch_size:
            self.batch_size = min(self.batch_size, half)
        outs, i = [], 0
        while i < len(chunk):
            size = min(half, self.batch_size or self._batch_sizes[key])
            outs.append(self._run_fitting(image, chunk[i : i + size], guide, key))
            i += size
        return torch.cat(outs)

    def _in_order(self, fn: Callable, items):
        """(item, fn(item)) for each item, in order; on ``workers`` threads of one torch thread each."""
        if self.workers == 1:
            for item in items:
                yield item, fn(item)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=self.workers, initializer=torch.set_num_threads, initargs=(1,))
        pending: deque = deque()
        try:
            for item in items:
                pending.append((item, pool.submit(fn, item)))
                # A bounded queue: results wait in memory only until the ones before them are merged.
                if len(pending) >= 2 * self.workers:
                    first, future = pending.popleft()
                    yield first, future.result()
            while pending:
                first, future = pending.popleft()
                yield first, future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _noise_grid(self, tiles: list[Tile]) -> torch.Tensor | None:
        """Noise for the whole image's latent grid, from the seed alone."""
        if self.prior is None:
            return None
        s = self.settings
        scale = self.prior.scale
        c, lh, lw = self.prior.latent_shape(tiles[0].height, tiles[0].width)
        rows = max(t.y // scale for t in tiles) + lh
        cols = max(t.x // scale for t in tiles) + lw
        draws = noise_draws(s.prior_steps, s.sampler, s.eta)
        generator = torch.Generator().manual_seed(s.seed)
        return torch.randn((draws, c, rows, cols), generator=generator)

    def _tile_noise(self, noise: torch.Tensor, chunk: list[Tile]) -> torch.Tensor:
        scale = self.prior.scale
        _, lh, lw = self.prior.latent_shape(chunk[0].height, chunk[0].width)
        crops = [noise[:, :, t.y // scale : t.y // scale + lh, t.x // scale : t.x // scale + lw] for t in chunk]
        return torch.stack(crops, dim=1)

    def _forward(
        self, x: torch.Tensor, noise: torch.Tensor | None, dtype: torch.dtype, prior: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The restored tiles; ``prior``: their crops of a whole-image prior map, else sampled here."""
        if self.prior is not None and prior is None:
            s = self.settings
            # The prior samples in fp32: its scheduler arithmetic is precision-sensitive and it is cheap.
            prior = self.prior(x, steps=s.prior_steps, sampler=s.sampler, eta=s.eta, noise=noise)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            y = self.model(x, prior)
        return y.float()

    @torch.no_grad()  # here and not only on restore: worker threads do not inherit the grad mode
    def _run(self, image: torch.Tensor, chunk: list[Tile], guide) -> torch.Tensor:
        noise, prior_map = guide
        x = torch.stack([image[:, t.slices[0], t.slices[1]] for t in chunk]).to(self.device)
        x = x.contiguous(memory_format=self.memory_format)
        tile_noise = self._tile_noise(noise, chunk) if noise is not None else None
        prior = None
        if prior_map is not None:
            prior = torch.stack([prior_map[:, t.slices[0], t.slices[1]] for t in chunk]).to(self.device)
        y = self._forward(x, tile_noise, self.dtype, prior)
        if self.dtype != torch.float32:
            bad = ~torch.isfinite(y).flatten(1).all(dim=1)
            if bad.any():
                idx = bad.nonzero().flatten()
                redo_noise = tile_noise[:, idx.cpu()] if tile_noise is not None else None
                y[idx] = self._forward(x[idx], redo_noise, torch.float32, prior[idx] if prior is not None else None)
        return y.cpu()


def _tile_too_large(key: tuple[int, int], device: torch.device) -> MemoryError:
    return MemoryError(f"one {key[0]}x{key[1]} tile does not fit in memory on {device}; use a smaller window")
