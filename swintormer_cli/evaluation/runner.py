"""Scoring a model on an evaluation set, for one setting or a sweep of them.

Every report starts with the blurry input's own scores, then one row per model setting (a sweep over
window, shift, prior steps and blend gives several), then reference outputs found beside the data
(e.g. DPDNet's). Metrics are computed on the restored float image clipped to [0, 1], before any
quantisation, as Restormer's DPDD test script does.
"""

from __future__ import annotations

import functools
import itertools
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..inference.settings import InferenceSettings, SettingError
from ..io import to_pixels, write_image
from .datasets import EvalSet, load_pixels
from .metrics import finite_mean, gain_compensated_psnr, mae, psnr, ssim

METRICS = ("psnr", "ssim", "mae", "lpips", "gc_psnr")


@dataclass(frozen=True)
class Setting:
    """One point of a sweep, resolved (``InferenceSettings`` filled in its defaults and checked it)."""

    window: int
    shift: int
    blend: str = "average"
    prior_steps: int | None = None

    @property
    def label(self) -> str:
        text = f"window {self.window} / shift {self.shift}, {self.blend}"
        if self.prior_steps is not None:
            text += f", {self.prior_steps} prior steps"
        return text

    @property
    def slug(self) -> str:
        text = f"w{self.window}-s{self.shift}-{self.blend}"
        return text + (f"-p{self.prior_steps}" if self.prior_steps is not None else "")

    def applied_to(self, base: InferenceSettings) -> InferenceSettings:
        """``base`` with this point's window, shift, blend and prior steps."""
        steps = base.prior_steps if self.prior_steps is None else self.prior_steps
        return replace(base, window=self.window, shift=self.shift, blend=self.blend, prior_steps=steps)


def sweep(
    windows: list[int | None],
    shifts: list[int | None],
    blends: list[str],
    steps: list[int | None],
    base: InferenceSettings | None = None,
    **resolve_args,
) -> tuple[list[Setting], list[str]]:
    """The grid of settings, each resolved and checked by ``InferenceSettings.resolve(**resolve_args)``
    (None: the default); combinations whose shift exceeds the window are left out (and said so), any other
    bad value is a ``SettingError``. ``steps``: None for a model without a prior."""
    base = base or InferenceSettings()
    settings, skipped = [], []
    for window, shift, blend, step in itertools.product(windows, shifts, blends, steps):
        candidate = replace(base, window=window, shift=shift, blend=blend)
        if step is not None:
            candidate = replace(candidate, prior_steps=step)
        try:
            s = candidate.resolve(**resolve_args)
        except SettingError as exc:
            if exc.name != "shift":
                raise
            window = replace(candidate, shift=None).resolve(**resolve_args).window
            skipped.append(f"shift {shift} > window {window}")
            continue
        settings.append(Setting(s.window, s.shift, s.blend, None if step is None else s.prior_steps))
    return list(dict.fromkeys(settings)), skipped


class LPIPSMetric:
    """AlexNet LPIPS (``normalize=True``) when the ``lpips`` package and its weights load; otherwise n/a."""

    def __init__(self, enabled: bool = True):
        self.model = None
        self.reason = "LPIPS not requested"
        if not enabled:
            return
        try:
            import contextlib
            import io

            import lpips  # noqa: F401

            with contextlib.redirect_stdout(io.StringIO()):
                self.model = lpips.LPIPS(net="alex", verbose=False).eval()
            self.reason = ""
        except Exception as exc:  # noqa: BLE001 - any failure means the metric is unavailable
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.reason = (
                f"LPIPS n/a ({first[:120]}): `pip install lpips` and make its AlexNet weights available "
                "(torchvision downloads them once, or place them in the torch hub cache)"
            )

    @property
    def available(self) -> bool:
        return self.model is not None

    def __call__(self, output: np.ndarray, target: np.ndarray) -> float | None:
        if self.model is None:
            return None
        import torch

        def to(t):
            return torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)).permute(2, 0, 1)[None]

        with torch.no_grad():
            return float(self.model(to(output), to(target), normalize=True))


def score(
    output: np.ndarray,
    target: np.ndarray,
    lpips_metric: LPIPSMetric | None,
    gain_compensate: bool,
    mask: np.ndarray | None = None,
) -> dict:
    """The metrics of one image; with ``mask`` (HxW bool), of those pixels alone (LPIPS, a whole-image score: n/a)."""
    output = np.clip(output, 0, 1)
    row = {"psnr": psnr(output, target, mask), "ssim": ssim(output, target, mask), "mae": mae(output, target, mask)}
    row["lpips"] = lpips_metric(output, target) if lpips_metric is not None and mask is None else None
    row["gc_psnr"] = gain_compensated_psnr(output, target, mask) if gain_compensate else None
    return row


@dataclass
class Row:
    label: str
    kind: str
    """``input``, ``model`` or ``reference``."""
    setting: dict | None = None
    images: list[dict] = field(default_factory=list)
    averages: dict[str, dict[str, float | None]] = field(default_factory=dict)
    gain: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def summarise(self, groups: dict[str, list[int]]) -> None:
        for group, indices in groups.items():
            chosen = [self.images[i] for i in indices if i < len(self.images)]
            self.averages[group] = {
                m: (finite_mean([r[m] for r in chosen]) if any(r.get(m) is not None for r in chosen) else None)
                for m in METRICS
            }


@dataclass
class EvalReport:
    dataset: dict
    model: dict
    run: dict
    rows: list[Row]
    notes: list[str]

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "model": self.model,
            "run": self.run,
            "notes": self.notes,
            "rows": [asdict(r) for r in self.rows],
        }


def model_record(resolved, bundle, pipeline) -> dict:
    """What a report says about the model and how it ran: the resolved model (``weights.resolve_model``), its
    loaded bundle, and the pipeline of the first setting."""
    from ..weights import sha256_of

    s = pipeline.settings
    return {
        "name": resolved.name,
        "origin": resolved.origin,
        "path": str(resolved.path),
        "sha256": resolved.sha256 or sha256_of(resolved.path),
        "prior": bundle.prior_kind,
        "config": bundle.config.to_dict(),
        "training": bundle.training,
        "device": str(pipeline.device),
        "precision": pipeline.precision,
        "sampler": s.sampler,
        "eta": s.eta,
        "seed": s.seed,
        "memory_budget": pipeline.memory_budget,
        "scale": pipeline.scale_mode,
        "max_scale": s.max_scale,
        "scale_radius": s.scale_radius,
        "strength": s.strength,
        "keep_background_blur": s.keep_background_blur,
    }


def versions() -> dict:
    import diffusers
    import skimage
    import torch

    from .. import __version__

    return {
        "swintormer": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "numpy": np.__version__,
        "scikit-image": skimage.__version__,
        "python": platform.python_version(),
    }


@dataclass(frozen=True)
class InFocus:
    """Score only the pixels whose blur, in ``pipeline``'s map of the blurry input, is at most ``largest_radius``
    px. Each image's map is made once: it chooses the scored pixels and is handed to every setting's restore."""

    pipeline: object
    largest_radius: float

    @property
    def note(self) -> str:
        return f"the pixels whose estimated blur is at most {self.largest_radius:g} px"


def _input_view(sources: list[np.ndarray]) -> np.ndarray:
    # The blurry "input" of a dual-pixel pair is the mean of its two views (the centre view, in effect).
    return sources[0] if len(sources) == 1 else (sources[0] + sources[1]) / 2


def image_folder(save_images: Path, slug: str, settings: int) -> Path:
    """Where ``evaluate(save_images=...)`` writes a setting's images: a folder of its own when a sweep has several."""
    return save_images / slug if settings > 1 else save_images


def _read_pair(eval_set: EvalSet, i: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Item ``i``'s (sources, target) pixels, checked for size."""
    item, bits = eval_set.items[i], eval_set.bits
    sources, target = [load_pixels(p, bits) for p in item.sources], load_pixels(item.target, bits)
    if sources and sources[0].shape != target.shape:
        raise ValueError(
            f"{item.sources[0]} is {sources[0].shape[1]}x{sources[0].shape[0]} but its target "
            f"{item.target} is {target.shape[1]}x{target.shape[0]}"
        )
    return sources, target


def evaluate(
    eval_set: EvalSet,
    make_pipeline: Callable[[Setting], object] | None,
    settings: list[Setting],
    *,
    gain_compensate: bool = False,
    lpips_metric: LPIPSMetric | None = None,
    save_images: Path | None = None,
    on_image: Callable[[str, int, int], None] | None = None,
    model_info: dict | None = None,
    prior_maps: Callable[[int], object] | None = None,
    in_focus: InFocus | None = None,
) -> EvalReport:
    """Score the input, every setting, and the references, image by image.

    Each image is read once and restored by every setting in turn (a sweep's pipelines are made on first use and
    kept), so memory holds one image whatever the set's size. ``prior_maps``: item index -> its whole-image prior
    map, made beforehand (training validates with the maps it cached); by default each pipeline makes its own.
    ``in_focus``: score only the in-focus pixels of each image (``InFocus``)."""
    groups = {"all": list(range(len(eval_set.items)))}
    if eval_set.scenes:
        groups.update(eval_set.scenes)
    metric = functools.partial(score, lpips_metric=lpips_metric, gain_compensate=gain_compensate)
    input_row = Row("input (blurry)", "input")
    ref_rows = {name: Row(f"reference: {name}", "reference") for name in eval_set.references}
    model_rows = [Row(f"model: {s.label}", "model", asdict(s)) for s in settings] if make_pipeline else []
    pipelines: dict[int, object] = {}
    folders = [None if save_images is None else image_folder(save_images, s.slug, len(settings)) for s in settings]
    progress = _Progress(len(eval_set.items) * max(1, len(model_rows)), on_image)
    for i, item in enumerate(eval_set.items):
        sources, target = _read_pair(eval_set, i)
        radius = in_focus.pipeline.blur_map(sources[0]) if in_focus is not None else None
        mask = None if radius is None else (radius <= in_focus.largest_radius).numpy()
        image = _Scored(item.name, sources, target, mask)
        _score_input_and_references(eval_set, item, image, metric, input_row, ref_rows)
        for k, (row, setting) in enumerate(zip(model_rows, settings, strict=True)):
            if k not in pipelines:
                pipelines[k] = make_pipeline(setting)
            pipe = pipelines[k]
            # The map is the estimator's: a pipeline with another estimator makes its own.
            shared = radius if in_focus is not None and pipe.estimator is in_focus.pipeline.estimator else None
            prior_map = prior_maps(i) if prior_maps is not None else None
            _restore_and_score(row, pipe, image, metric, prior_map, shared, folders[k], eval_set.bits)
            progress(item.name)
    rows = [input_row, *model_rows, *ref_rows.values()]
    _summarise(rows, groups)
    notes = [eval_set.note] if eval_set.note else []
    if in_focus is not None:
        share = np.mean([im["scored_fraction"] for im in input_row.images]) if input_row.images else 0.0
        notes.append(f"scored only {in_focus.note}: {100 * share:.1f} % of the pixels")
    if lpips_metric is not None and not lpips_metric.available and in_focus is None:
        notes.append(lpips_metric.reason)
    dataset = {
        "name": eval_set.name,
        "root": str(eval_set.root),
        "images": len(eval_set.items),
        "views": eval_set.views,
        "bits": eval_set.bits,
        "scene_groups": sorted(groups),
    }
    run = {"versions": versions(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "gain_compensate": gain_compensate}
    if in_focus is not None:
        run["region"] = in_focus.note
    return EvalReport(dataset, model_info or {}, run, rows, notes)


@dataclass
class _Scored:
    """One image of the set as every row scores it: its pixels and the region scored (None: all of it)."""

    name: str
    sources: list[np.ndarray]
    target: np.ndarray
    mask: np.ndarray | None


def _score_input_and_references(eval_set: EvalSet, item, image: _Scored, metric, input_row, ref_rows) -> None:
    extra = {} if image.mask is None else {"scored_fraction": float(image.mask.mean())}
    scores = metric(_input_view(image.sources), image.target, mask=image.mask)
    input_row.images.append({"name": image.name, **scores, **extra})
    for name, folder in eval_set.references.items():
        ref = load_pixels(folder / item.target.name, eval_set.bits)
        ref_rows[name].images.append({"name": image.name, **metric(ref, image.target, mask=image.mask)})


def _restore_and_score(row, pipe, image: _Scored, metric, prior_map, radius, folder: Path | None, bits: int) -> None:
    """``image`` restored with one setting's pipeline, timed, scored into ``row`` (and written into ``folder``)."""
    start = time.perf_counter()
    restored = pipe(np.concatenate(image.sources, axis=2), prior_map=prior_map, radius=radius)
    row.seconds += time.perf_counter() - start
    row.images.append({"name": image.name, **metric(restored, image.target, mask=image.mask)})
    if folder is not None:
        write_image(folder / f"{image.name}.png", to_pixels(restored, bits))


class _Progress:
    """Counts the images restored over all settings, for ``on_image(name, done, total)``."""

    def __init__(self, total: int, on_image):
        self.total, self.on_image, self.done = total, on_image, 0

    def __call__(self, name: str) -> None:
        self.done += 1
        if self.on_image is not None:
            self.on_image(name, self.done, self.total)


def _summarise(rows: list[Row], groups: dict[str, list[int]]) -> None:
    """Each row's averages per group, and its gain over the input's (the first row)."""
    for row in rows:
        row.summarise(groups)
    base = rows[0].averages["all"]
    for row in rows[1:]:
        row.gain = {
            m: row.averages["all"][m] - base[m]
            for m in ("psnr", "ssim", "gc_psnr")
            if row.averages["all"].get(m) is not None and base.get(m) is not None
        }
