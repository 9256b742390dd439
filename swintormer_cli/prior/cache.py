"""Prior maps made once per image and kept beside the data, checked before each use.

A prior sampled over the whole image (``ldm-sr``) costs a large UNet's 20 DDIM steps per image: sampling it for
every training batch would cost far more than the restorer's own step. Paired data (DPDD) has fixed blurry
inputs, so each image's map is made once, stored, and training crops it at the window it crops the image at.

    <root>/.swintormer-prior-cache/<kind>-<settings digest>/<first input, relative to root>.safetensors

One safetensors file per image holds the map (``prior``: C x H x W at the image's resolution, in the storage
dtype) and, in its metadata, the key it was made under: the settings (the prior, its weights' Hub commit and
sha256, steps, sampler, eta, seed, patching, storage dtype, the bit depth the image is read at) and each input
file's path relative to the root with its sha256. An entry is used only when its key equals the key the current
settings and files give; otherwise (a changed image, other settings or weights, a damaged file) it is computed
again and replaced atomically. Other settings get another folder, so ablations that differ only in, say, the
step count keep their maps side by side. The folder is hidden, so image listings never take it for data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..defaults import DEFAULT_PRIOR_STEPS, DEFAULT_SAMPLER
from ..io import ImageReadError, atomic_write_bytes, load_pixels, one_line, sha256_of
from .base import SAMPLERS, Prior

log = logging.getLogger("swintormer.prior")

CACHE_DIR = ".swintormer-prior-cache"
FORMAT = "swintormer-prior-map/1"
"""Changes when the way maps are made changes, so that older entries are made again."""
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass(frozen=True)
class MapSettings:
    """How each image's map is sampled and stored (a training config's ``prior`` section gives them)."""

    steps: int = DEFAULT_PRIOR_STEPS
    sampler: str = DEFAULT_SAMPLER
    eta: float | None = None
    """None: the prior's own (1 for ldm-sr, as the paper's script)."""
    seed: int = 0
    """Each image's noise comes from (seed, its path relative to the data root): one image, one map."""
    dtype: str = "float16"
    """Storage: float16 halves the disk and reading of float32, far below what the modulations resolve."""

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"prior map steps must be at least 1, got {self.steps}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"prior map sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"prior map dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")


@dataclass(frozen=True)
class MapItem:
    """One image to make a map of: its input file(s) (two for a dual-pixel pair) under a data root."""

    root: Path
    sources: tuple[Path, ...]
    bits: int
    """The bit depth the inputs are read at (``io.load_pixels``), as training and evaluation read them."""

    @property
    def names(self) -> list[str]:
        """The inputs' paths relative to the root (POSIX), or absolute where one lies outside it."""
        out = []
        for path in self.sources:
            try:
                out.append(Path(path).resolve().relative_to(Path(self.root).resolve()).as_posix())
            except ValueError:
                out.append(Path(path).resolve().as_posix())
        return out

    def read(self) -> torch.Tensor:
        """(3 * views, H, W) float32 in [0, 1]."""
        views = [torch.from_numpy(load_pixels(p, self.bits)).permute(2, 0, 1) for p in self.sources]
        return torch.cat(views).contiguous()


@dataclass
class CacheReport:
    reused: int = 0
    computed: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, other: CacheReport) -> None:
        self.reused += other.reused
        self.computed += other.computed
        self.failed += [f for f in other.failed if f not in self.failed]
        self.seconds += other.seconds

    def __str__(self) -> str:
        text = f"prior maps: {self.reused} reused, {self.computed} computed in {self.seconds:.1f} s"
        return text + (f", {len(self.failed)} unreadable" if self.failed else "")


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class PriorMapCache:
    """Maps of ``prior`` under ``settings``, kept beside each data root (or under ``folder``)."""

    def __init__(
        self,
        prior: Prior,
        settings: MapSettings | None = None,
        folder: str | Path | None = None,
        device: torch.device | str | None = None,
    ):
        if not prior.whole_image:
            raise ValueError(f"the {prior.kind!r} prior is sampled tile by tile: there is no per-image map to cache")
        self.prior = prior
        self.settings = settings or MapSettings()
        self.folder = Path(folder).expanduser() if folder else None
        self.device = device

    @property
    def eta(self) -> float:
        return self.prior.default_eta if self.settings.eta is None else float(self.settings.eta)

    @property
    def key(self) -> dict:
        """Everything besides the image that a map depends on."""
        s = self.settings
        return {
            "format": FORMAT,
            "prior": self.prior.kind,
            **getattr(self.prior, "identity", {}),
            "patch": [getattr(self.prior, "patch", None), getattr(self.prior, "patch_stride", None)],
            "steps": s.steps,
            "sampler": s.sampler,
            "eta": self.eta,
            "seed": s.seed,
            "dtype": s.dtype,
        }

    def folder_for(self, root: Path) -> Path:
        name = f"{self.prior.kind}-{_digest(self.key)[:16]}"
        if self.folder is None:
            return Path(root) / CACHE_DIR / name
        # One folder for several roots: each root gets its own corner of it.
        resolved = Path(root).resolve()
        return self.folder / name / f"{resolved.name}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"

    def path(self, item: MapItem) -> Path:
        name = item.names[0]
        relative = name.lstrip("/") if Path(name).is_absolute() else name
        return self.folder_for(item.root) / f"{relative}.safetensors"

    def item_key(self, item: MapItem) -> dict:
        inputs = [{"path": n, "sha256": sha256_of(p)} for n, p in zip(item.names, item.sources, strict=True)]
        return {"settings": self.key, "bits": item.bits, "inputs": inputs}

    # -- one entry ------------------------------------------------------------------------------------------
    def lookup(self, item: MapItem, item_key: dict | None = None) -> tuple[Path | None, str]:
        """(the entry's path, "") when it holds this image's map under these settings, else (None, why not)."""
        path = self.path(item)
        if not path.is_file():
            return None, "not made yet"
        item_key = item_key or self.item_key(item)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                shape = f.get_slice("prior").get_shape()
            stored = json.loads(meta.get("key", "null"))
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            return None, f"unreadable ({one_line(exc)})"
        if stored != item_key:
            return None, _difference(stored, item_key)
        expected = [self.prior.channels, int(meta.get("height", -1)), int(meta.get("width", -1))]
        if list(shape) != expected:
            return None, f"its map is {list(shape)}, its record says {expected}"
        return path, ""

    def compute(self, item: MapItem, item_key: dict | None = None) -> Path:
        """Make the image's map and write it (atomically: a kill leaves the old entry or the new one)."""
        item_key = item_key or self.item_key(item)
        image = item.read()
        seed = int(_digest([self.settings.seed, item.names])[:15], 16)
        s = self.settings
        with torch.no_grad():
            prior_map = self.prior.sample_map(image, s.steps, s.sampler, self.eta, seed, self.device)
        metadata = {
            "format": FORMAT,
            "key": json.dumps(item_key, sort_keys=True),
            "height": str(image.shape[-2]),
            "width": str(image.shape[-1]),
        }
        path = self.path(item)
        tensor = prior_map.to(DTYPES[s.dtype]).contiguous()
        atomic_write_bytes(path, save({"prior": tensor}, metadata=metadata))
        return path

    def ensure(self, item: MapItem) -> tuple[Path, bool]:
        """(the entry's path, whether it was computed now): reused when it checks out, else made."""
        item_key = self.item_key(item)
        path, why = self.lookup(item, item_key)
        if path is not None:
            return path, False
        if why != "not made yet":
            log.info("prior map of %s made again: %s", item.sources[0], why)
        return self.compute(item, item_key), True

    # -- many -----------------------------------------------------------------------------------------------
    def ensure_all(
        self,
        items: Sequence[MapItem],
        rank: int = 0,
        world: int = 1,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[list[Path | None], CacheReport]:
        """Check or make the maps of ``items[rank::world]`` (every item with the defaults): their paths in item
        order (None for the others and for an image that cannot be read, with a warning naming it)."""
        report = CacheReport()
        start = time.perf_counter()
        paths: list[Path | None] = [None] * len(items)
        mine = range(rank, len(items), world)
        for done, i in enumerate(mine, 1):
            item = items[i]
            try:
                paths[i], computed = self.ensure(item)
            except (ImageReadError, OSError) as exc:
                report.failed.append(str(item.sources[0]))
                log.warning("no prior map for %s: %s", item.sources[0], getattr(exc, "reason", None) or one_line(exc))
                continue
            if computed:
                report.computed += 1
            else:
                report.reused += 1
            if progress is not None:
                progress(done, len(mine))
        report.seconds = time.perf_counter() - start
        return paths, report


def _difference(stored, wanted: dict) -> str:
    """Why an entry's key differs, in words: the first field that changed."""
    if not isinstance(stored, dict):
        return "no key recorded"
    for section in ("inputs", "bits"):
        if stored.get(section) != wanted.get(section):
            return "its image changed" if section == "inputs" else f"{section} changed"
    old, new = stored.get("settings") or {}, wanted["settings"]
    for name in new:
        if old.get(name) != new[name]:
            return f"{name} changed ({old.get(name)!r} -> {new[name]!r})"
    return "its record differs"


def read_map(path: str | Path, window: tuple[int, int, int, int] | None = None, stored: bool = False) -> torch.Tensor:
    """A stored map as float32 (``stored``: in its storage dtype), whole or only ``window`` = (y, x, height, width)
    of it (only that part is read from the file)."""
    with safe_open(str(path), framework="pt") as f:
        if window is None:
            tensor = f.get_tensor("prior")
        else:
            y, x, h, w = window
            tensor = f.get_slice("prior")[:, y : y + h, x : x + w]
    return tensor if stored else tensor.float()


__all__ = ["CACHE_DIR", "CacheReport", "MapItem", "MapSettings", "PriorMapCache", "read_map"]
