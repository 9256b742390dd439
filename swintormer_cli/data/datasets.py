"""Training datasets: sharp photos (degraded as they load on a CPU, later on a GPU), paired folders, DPDD trees.

Every sample is a pure function of (seed, global sample index): which image, where the crop is, its
scale, flips and rotation. That makes a run reproducible and a resumed run identical to an uninterrupted
one, whatever the number of loader workers.

An image that cannot be read is skipped with one warning naming it, and another image is used instead.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from ..io import ImageReadError, list_images, load_pixels, pair_images, read_image, to_unit

log = logging.getLogger("swintormer.data")


def sample_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % (2**63 - 1))


def step_seed(seed: int, rank: int, step: int, salt: int = 0) -> int:
    """The seed of a training step's random draws (``salt`` tells them apart: 1 degradation, 2 the loss)."""
    return (seed * 1_000_003 + rank * 10_007 + step * 31 + salt) % (2**63 - 1)


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """HxWxC uint8/uint16 -> CxHxW float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(to_unit(array))).permute(2, 0, 1)


def augment(tensors: list[torch.Tensor], g: torch.Generator) -> list[torch.Tensor]:
    """The same random flip and 90-degree rotation for every tensor of a sample."""
    flip_h, flip_v = (torch.rand(2, generator=g) < 0.5).tolist()
    turns = int(torch.randint(0, 4, (1,), generator=g))
    out = []
    for t in tensors:
        if flip_h:
            t = t.flip(-1)
        if flip_v:
            t = t.flip(-2)
        out.append(torch.rot90(t, turns, dims=(-2, -1)) if turns else t)
    return out


class _ImageStore:
    """Decodes images on demand, optionally keeping them; remembers unreadable files."""

    def __init__(self, paths: list[Path], cache: bool):
        self.paths = paths
        self.cache = cache
        self._images: dict[int, torch.Tensor] = {}
        self.bad: set[int] = set()

    def get(self, i: int) -> torch.Tensor | None:
        if i in self.bad:
            return None
        if i in self._images:
            return self._images[i]
        try:
            image = read_image(self.paths[i], keep_alpha=False).pixels
        except ImageReadError as exc:
            self.bad.add(i)
            log.warning("skipping %s: %s", self.paths[i], exc.reason)
            return None
        tensor = _to_tensor(image)
        if tensor.shape[0] == 1:
            tensor = tensor.expand(3, -1, -1).contiguous()
        if self.cache:
            self._images[i] = tensor
        return tensor


class SharpImages(Dataset):
    """Random crops of sharp photos, ``crop_size + 2 * margin`` square, resized by a random factor.

    The margin gives the blur real content to spread in from; the trainer cuts it off after degrading.
    """

    def __init__(
        self,
        roots: list[str | Path],
        crop_size: int,
        margin: int = 0,
        scale=(1.0, 1.0),
        seed: int = 0,
        cache: bool = True,
    ):
        paths: list[Path] = []
        for root in roots:
            paths += list_images(root)
        if not paths:
            raise FileNotFoundError(f"no images found in {', '.join(map(str, roots))}")
        self.store = _ImageStore(paths, cache)
        self.size = crop_size + 2 * margin
        self.margin = margin
        self.scale = (float(scale[0]), float(scale[1]))
        self.seed = seed

    def __len__(self) -> int:
        return 2**62  # indexed by global sample number

    def preload(self) -> None:
        """Decode every photo now (kept when ``cache``), as a cached training run has after its first pass."""
        for i in range(len(self.store.paths)):
            self.store.get(i)

    def __getitem__(self, index: int) -> torch.Tensor:
        g = sample_generator(self.seed, index)
        for _ in range(100):
            i = int(torch.randint(0, len(self.store.paths), (1,), generator=g))
            image = self.store.get(i)
            if image is not None:
                return augment([self._crop(image, g)], g)[0]
        raise RuntimeError("no readable training image found after 100 tries")

    def _crop(self, image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        _, h, w = image.shape
        lo, hi = self.scale
        s = lo + (hi - lo) * float(torch.rand(1, generator=g))
        # Never upsample a photo: the sharp target must stay sharp.
        s = min(s, 1.0)
        s = max(s, self.size / min(h, w))
        src = int(math.ceil(self.size / s))
        src = min(src, h, w)
        y = int(torch.randint(0, h - src + 1, (1,), generator=g))
        x = int(torch.randint(0, w - src + 1, (1,), generator=g))
        crop = image[:, y : y + src, x : x + src]
        if src != self.size:
            crop = F.interpolate(
                crop[None], size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )[0].clamp(0, 1)
        return crop


@dataclass
class PairedSample:
    source: torch.Tensor
    target: torch.Tensor
    prior: torch.Tensor | None = None
    """The crop of the source's whole-image prior map (``ldm-sr``), cut and turned as the images are."""


def _paired_paths(source_dirs: list[Path], target_dir: Path) -> list[tuple[list[Path], Path]]:
    pairs, missing = pair_images(source_dirs, target_dir)
    for target, _ in missing:
        log.warning("skipping %s: no source image with the same name", target)
    if not pairs:
        raise FileNotFoundError(f"no image pairs found for {target_dir}")
    return pairs


def training_data(
    kind: str,
    roots: list[str],
    crop_size: int,
    *,
    margin: int = 0,
    scale=(1.0, 1.0),
    views: str = "single",
    seed: int = 0,
    cache: bool = True,
):
    """(dataset, collate function) for training data of ``kind``: ``sharp`` photos (crops with ``margin``
    pixels around them, degraded later), ``pairs`` (source/ + target/ folders) or ``dpdd`` (its train split)."""
    if kind == "sharp":
        if not roots:
            raise ValueError("data.roots is empty: give one or more folders of sharp photos")
        return SharpImages(roots, crop_size, margin, scale, seed, cache), torch.stack
    if kind == "pairs":
        pairs, pair_roots = [], []
        for root in roots:
            found = PairedImages.from_folder(root, crop_size, seed=seed).pairs
            pairs += found
            pair_roots += [Path(root)] * len(found)
        return PairedImages(pairs, crop_size, seed=seed, cache=cache, roots=pair_roots), collate_pairs
    if kind == "dpdd":
        return PairedImages.from_dpdd(roots[0], crop_size, views=views, seed=seed, cache=cache), collate_pairs
    raise ValueError(f"data.kind must be sharp, pairs or dpdd, got {kind!r}")


def dpdd_dirs(root: str | Path, split: str, views: str) -> tuple[list[Path], Path]:
    """(source folders, target folder) of a DPDD split in either layout.

    Official: ``{split}_c/source``, ``{split}_c/target``, ``{split}_l/source``, ``{split}_r/source``.
    Restormer's: ``{split}/DPDD/inputC|inputL|inputR|target`` (also accepted one level down: ``{split}/``).
    """
    root = Path(root)
    if views not in ("single", "dual"):
        raise ValueError(f"views must be 'single' or 'dual', got {views!r}")
    official = root / f"{split}_c"
    if official.is_dir():
        sources = (
            [official / "source"]
            if views == "single"
            else [root / f"{split}_l" / "source", root / f"{split}_r" / "source"]
        )
        return sources, official / "target"
    for base in (root / split / "DPDD", root / split, root):
        if (base / "target").is_dir() and (base / "inputC").is_dir():
            sources = [base / "inputC"] if views == "single" else [base / "inputL", base / "inputR"]
            return sources, base / "target"
    raise FileNotFoundError(
        f"{root}: not a DPDD {split} tree (expected {split}_c/source + {split}_c/target, "
        f"or {split}/DPDD/inputC + target)"
    )


class PairedImages(Dataset):
    """Aligned random crops from paired folders: one or two source views and a target, and the crop of the
    source's prior map when ``prior_maps`` holds one per pair (a map file from ``prior.cache``).

    Single-view inputs are read as 8-bit, dual-pixel views as 16-bit (the DPDD protocol, ``io.load_pixels``).
    """

    def __init__(
        self,
        pairs: list[tuple[list[Path], Path]],
        crop_size: int,
        seed: int = 0,
        cache: bool = True,
        roots: list[Path] | None = None,
    ):
        self.pairs = pairs
        self.crop_size = crop_size
        self.seed = seed
        self.cache = cache
        self.roots = roots
        """The data root of each pair (what a cached prior map names its inputs relative to)."""
        self.prior_maps: list[Path | None] | None = None
        self._images: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._maps: dict[int, torch.Tensor] = {}
        self.bad: set[int] = set()

    @property
    def bits(self) -> int:
        return 8 if not self.pairs or len(self.pairs[0][0]) == 1 else 16

    @classmethod
    def from_folder(cls, root: str | Path, crop_size: int, **kw) -> PairedImages:
        root = Path(root)
        pairs = _paired_paths([root / "source"], root / "target")
        return cls(pairs, crop_size, roots=[root] * len(pairs), **kw)

    @classmethod
    def from_dpdd(cls, root: str | Path, crop_size: int, views: str = "single", **kw) -> PairedImages:
        sources, target = dpdd_dirs(root, "train", views)
        pairs = _paired_paths(sources, target)
        return cls(pairs, crop_size, roots=[Path(root)] * len(pairs), **kw)

    def __len__(self) -> int:
        return 2**62

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        if i in self.bad:
            return None
        if i in self._images:
            return self._images[i]
        sources, target = self.pairs[i]

        def read(path: Path) -> torch.Tensor:
            return torch.from_numpy(load_pixels(path, self.bits)).permute(2, 0, 1).contiguous()

        try:
            src = torch.cat([read(p) for p in sources])
            tgt = read(target)
        except ImageReadError as exc:
            self.bad.add(i)
            log.warning("skipping %s: %s", exc.path, exc.reason)
            return None
        if src.shape[-2:] != tgt.shape[-2:]:
            self.bad.add(i)
            log.warning("skipping %s: source and target sizes differ", target)
            return None
        if self.cache:
            self._images[i] = (src, tgt)
        return src, tgt

    def __getitem__(self, index: int) -> PairedSample:
        g = sample_generator(self.seed, index)
        for _ in range(100):
            i = int(torch.randint(0, len(self.pairs), (1,), generator=g))
            loaded = self._load(i)
            if loaded is None:
                continue
            src, tgt = loaded
            _, h, w = tgt.shape
            c = min(self.crop_size, h, w)
            y = int(torch.randint(0, h - c + 1, (1,), generator=g))
            x = int(torch.randint(0, w - c + 1, (1,), generator=g))
            crops = [src[:, y : y + c, x : x + c], tgt[:, y : y + c, x : x + c]]
            if self.prior_maps is not None:
                crops.append(self._map_crop(i, (y, x, c, c), (h, w)))
            return PairedSample(*augment(crops, g))
        raise RuntimeError("no readable training pair found after 100 tries")

    def _map_crop(self, i: int, window: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
        """The prior map's crop at the image crop's window (the map is at the image's resolution)."""
        from ..prior.cache import read_map

        path = self.prior_maps[i]
        if path is None:
            raise RuntimeError(f"{self.pairs[i][0][0]}: no prior map for it (run `swintormer prior cache`)")
        y, x, c, _ = window
        if self.cache:
            if i not in self._maps:  # kept in its storage dtype (float16 by default): half the memory
                self._maps[i] = read_map(path, stored=True)
            whole = self._maps[i]
        else:  # only the window is read from the file
            whole = None
        crop = whole[:, y : y + c, x : x + c].float() if whole is not None else read_map(path, window)
        if crop.shape[-2:] != (c, c) or (whole is not None and whole.shape[-2:] != size):
            raise RuntimeError(f"{path}: its prior map does not match the size of {self.pairs[i][0][0]}")
        return crop


def collate_pairs(samples: list[PairedSample]) -> PairedSample:
    prior = torch.stack([s.prior for s in samples]) if samples[0].prior is not None else None
    return PairedSample(torch.stack([s.source for s in samples]), torch.stack([s.target for s in samples]), prior)


@dataclass
class StepPairs:
    """A training step's (blurry, sharp) crop pairs, margins cut off, with the step they belong to."""

    step: int
    blurry: torch.Tensor
    sharp: torch.Tensor


class IndexedSamples(Dataset):
    """``dataset[i]`` with its index, so a collate function knows which step a batch belongs to."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        return index, self.dataset[index]


def degrade_crops(
    degradation, sharp: torch.Tensor, generator: torch.Generator, memory_format=torch.contiguous_format
) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurry, sharp) of a batch of crops with the degradation's margin around them: degraded, margin cut off."""
    out = degradation(sharp, generator)
    m = degradation.config.margin
    cut = (slice(None), slice(None), slice(m, sharp.shape[-2] - m), slice(m, sharp.shape[-1] - m))
    return out.blurry[cut].contiguous(memory_format=memory_format), out.sharp[cut].contiguous(
        memory_format=memory_format
    )


class DegradingCollate:
    """Collate for ``IndexedSamples`` of sharp crops: stacks a step's crops and degrades them with that step's
    generator. In DataLoader worker processes (``data.workers`` > 0) the next steps' blur is made while the
    current one trains, on the core time the step's small kernels leave idle; with the same seeds, a batch is
    the same whichever process makes it."""

    def __init__(
        self,
        degradation,
        seed: int,
        batch: int,
        rank: int = 0,
        world: int = 1,
        memory_format: torch.memory_format = torch.contiguous_format,
    ):
        self.degradation = degradation
        self.seed, self.batch, self.rank, self.world = seed, batch, rank, world
        self.memory_format = memory_format

    def step_of(self, index: int) -> int:
        """Inverse of ``StepSampler``'s numbering: sample ((step * W + r) * batch + j) belongs to ``step``."""
        return (index // self.batch - self.rank) // self.world

    def __call__(self, samples: list[tuple[int, torch.Tensor]]) -> StepPairs:
        step = self.step_of(samples[0][0])
        sharp = torch.stack([crop for _, crop in samples])
        generator = torch.Generator().manual_seed(step_seed(self.seed, self.rank, step, salt=1))
        return StepPairs(step, *degrade_crops(self.degradation, sharp, generator, self.memory_format))


class StepSampler(Sampler[int]):
    """Global sample indices for steps [start_step, end_step) of one rank: rank r of W takes samples
    ((step * W + r) * batch + j)."""

    def __init__(self, start_step: int, end_step: int, batch_size: int, rank: int = 0, world: int = 1):
        self.start, self.end, self.batch = start_step, end_step, batch_size
        self.rank, self.world = rank, world

    def __iter__(self):
        for step in range(self.start, self.end):
            base = (step * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return max(0, self.end - self.start) * self.batch
