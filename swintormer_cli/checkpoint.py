"""The model file format: one safetensors file holding the restorer, its prior, and their configs.

Tensors are stored under ``restorer.`` and ``prior.``; the safetensors metadata (text only, so nothing is
ever unpickled) holds the Swintormer config, the prior's kind and config, and what training recorded
(the crop size the model was trained at, its data, steps). A model trained with a prior therefore loads
with it automatically, and a mismatch between the two is reported instead of silently ignored.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .io import atomic_write_bytes, one_line
from .models import Swintormer, SwintormerConfig
from .prior import PRIOR_KINDS, Prior, build_prior

FORMAT = "swintormer/1"
# Parts of a prior that only training uses; inference exports may leave them out.
TRAINING_ONLY_PREFIXES = ("prior.target_encoder.",)


class CheckpointError(ValueError):
    """A model file that cannot be used, with a message that names it."""


def _one_line_errors(load):
    """Whatever goes wrong reading a model file (a truncated file, metadata that builds no network, tensors
    of the wrong shape, an error of a library underneath) becomes a one-line ``CheckpointError`` naming it."""

    signature = inspect.signature(load)

    @functools.wraps(load)
    def wrapper(*args, **kwargs):
        try:
            return load(*args, **kwargs)
        except (CheckpointError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - see above
            path = signature.bind(*args, **kwargs).arguments["path"]
            reason = f"{type(exc).__name__}: {one_line(exc)}"
            raise CheckpointError(f"{path}: cannot use this model file ({reason})") from exc

    return wrapper


@dataclass(frozen=True)
class ModelDefaults:
    """The settings a model file names for itself (those its training validated with, recorded in the file);
    each applies where the user gives none. The shift holds only with its own window."""

    window: int | None = None
    shift: int | None = None
    prior_steps: int | None = None
    scale_radius: float | None = None


@dataclass
class ModelBundle:
    """A restorer, its prior (or None), and what the file said about them."""

    model: Swintormer
    prior: Prior | None
    prior_kind: str = "none"
    training: dict = field(default_factory=dict)
    source: str = ""
    estimator: object | None = None
    """The blur estimator that chooses its scales (a ``BlurEstimator``; the registry pairs one on loading)."""

    @property
    def config(self) -> SwintormerConfig:
        return self.model.config

    @property
    def trained_window(self) -> int | None:
        value = self.training.get("window") or self.training.get("crop_size")
        return int(value) if value else None

    @property
    def inference_defaults(self) -> ModelDefaults:
        """What the file's training record names for inference: the window and shift its validation tiled with,
        and the prior steps (those of the ldm-sr maps it trained on, or of the latent prior its validation
        sampled with)."""

        def number(value):
            return int(value) if value else None

        maps = self.training.get("prior_maps")
        steps = maps.get("steps") if isinstance(maps, dict) else self.training.get("prior_steps")
        scale_radius = self.training.get("scale_radius")
        return ModelDefaults(
            self.trained_window,
            number(self.training.get("shift")),
            number(steps),
            float(scale_radius) if scale_radius else None,
        )


def prior_spec(prior: Prior | None) -> dict:
    if prior is None:
        return {"kind": "none"}
    spec = {"kind": prior.kind}
    if hasattr(prior, "config"):
        spec["config"] = prior.config.to_dict()
    if getattr(prior, "source", None):
        spec["source"] = prior.source
    if getattr(prior, "revision", None):
        spec["revision"] = prior.revision
    if getattr(prior, "digest", None):
        spec["sha256"] = prior.digest
    return spec


_COMMIT = re.compile(r"[0-9a-f]{40}")


def _check_pinned(path: Path, source: str | None, revision: str | None) -> None:
    """An ldm-sr prior named by a model file comes from a folder here, or from a Hub repo at a pinned commit:
    never from whatever a repo (the default one included) holds today."""
    if source and Path(source).expanduser().is_dir():
        return
    if isinstance(revision, str) and _COMMIT.fullmatch(revision):
        return
    where = repr(source) if source else "the default Hub repo"
    raise CheckpointError(
        f"{path}: its ldm-sr prior comes from {where}, which is not a folder here, with no pinned Hub commit "
        f"(revision {revision!r}, not 40 hex digits); refusing to fetch unpinned weights: pass "
        "load_model(path, prior_source=FOLDER_OR_REPO, prior_revision=COMMIT)"
    )


def state_tensors(model: Swintormer, prior: Prior | None, inference_only: bool = False) -> dict[str, torch.Tensor]:
    tensors = {f"restorer.{k}": v for k, v in model.state_dict().items()}
    if prior is not None and prior.kind == "latent":
        tensors.update({f"prior.{k}": v for k, v in prior.state_dict().items()})
    if inference_only:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def save_model(
    path: str | Path,
    model: Swintormer,
    prior: Prior | None = None,
    training: dict | None = None,
    inference_only: bool = False,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a model file atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    tensors = state_tensors(model, prior, inference_only)
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    metadata = {
        "format": FORMAT,
        "swintormer_config": json.dumps(model.config.to_dict()),
        "prior": json.dumps(prior_spec(prior)),
        "training": json.dumps(training or {}),
    }
    atomic_write_bytes(path, save(tensors, metadata=metadata))
    return path


def read_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({one_line(exc)})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a swintormer model file (no '{FORMAT}' format tag)")
    try:
        parsed = {
            "swintormer_config": json.loads(meta["swintormer_config"]),
            "prior": json.loads(meta.get("prior", '{"kind": "none"}')),
            "training": json.loads(meta.get("training", "{}")),
        }
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: damaged model metadata ({one_line(exc)})") from exc
    for key, value in parsed.items():
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: damaged model metadata ({key} is not a JSON object)")
    kind = parsed["prior"].get("kind", "none")
    if kind not in PRIOR_KINDS:
        raise CheckpointError(f"{path}: unknown prior {kind!r} in its metadata (known: {', '.join(PRIOR_KINDS)})")
    if kind == "latent" and isinstance(parsed["prior"].get("config"), dict):
        # Files from before LatentPriorConfig.target_norm existed (tiny-latent among them) were all tanh.
        parsed["prior"]["config"].setdefault("target_norm", "tanh")
    return parsed


def _split_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A model file's tensors as (restorer state, prior state), prefixes removed."""
    tensors = load_file(str(path))

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    return part("restorer."), part("prior.")


@_one_line_errors
def load_model(path: str | Path, prior_source: str | None = None, prior_revision: str | None = None) -> ModelBundle:
    """Build the restorer and its prior from a model file and load their weights.

    An ``ldm-sr`` prior is loaded from where the file says (a folder here, or a Hub repo at the pinned
    commit the file records), or from ``prior_source`` (a folder or a Hub repo, at ``prior_revision``)."""
    path = Path(path)
    meta = read_metadata(path)
    config = SwintormerConfig.from_dict(meta["swintormer_config"])
    spec = meta["prior"]
    kind = spec.get("kind", "none")
    if kind == "none" and config.prior_channels:
        raise CheckpointError(
            f"{path}: the network expects a prior ({config.prior_channels} channels) but none is recorded"
        )
    model = Swintormer(config)
    source, revision = (prior_source, prior_revision) if prior_source else (spec.get("source"), spec.get("revision"))
    if kind == "ldm-sr" and not prior_source:
        _check_pinned(path, source, revision)
    prior = build_prior(kind, spec.get("config"), in_views=config.in_views, source=source, revision=revision)
    expected = spec.get("sha256")
    if kind == "ldm-sr" and expected and prior.digest != expected:
        # Other weights make other prior maps than the ones the network learnt to read.
        raise CheckpointError(
            f"{path}: its ldm-sr prior from {source or 'the default Hub repo'} has files with sha256 "
            f"{prior.digest}, but the model was trained with {expected}; refusing a different prior"
        )
    restorer, state = _split_tensors(path)
    load_restorer(model, restorer, str(path))
    if prior is not None and kind == "latent":
        missing, unexpected = prior.load_state_dict(state, strict=False)
        missing = [k for k in missing if not f"prior.{k}".startswith(TRAINING_ONLY_PREFIXES)]
        if missing or unexpected:
            raise CheckpointError(
                f"{path}: prior weights do not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    model.eval()
    if prior is not None:
        prior.eval()
    return ModelBundle(model, prior, kind, meta["training"], str(path))


# Fields a fine-tuning run may set anew when its file has no prior: adding one adds zero-initialised modulations.
_PRIOR_FIELDS = ("prior_channels", "prior_scale", "prior_hidden")


@_one_line_errors
def init_from_file(
    model: Swintormer, prior: Prior | None, path: str | Path, relearn_target_encoder: bool = False
) -> None:
    """Copy a model file's weights into networks built for training (fine-tuning).

    The restorer must have the file's architecture. A file without a prior may start a network with one:
    the prior modulations are left at their zero initialisation, so the network computes what the file's did.
    A file with a prior needs a run with the same prior (its weights are loaded too). An inference export
    has no target encoder; ``relearn_target_encoder`` (a run with an ``encoder`` stage) accepts that."""
    path = Path(path)
    meta = read_metadata(path)
    kind = meta["prior"].get("kind", "none")
    run_kind = prior.kind if prior is not None else "none"
    if kind != "none" and kind != run_kind:
        raise CheckpointError(f"{path}: it was trained with a {kind!r} prior, but this run has prior {run_kind!r}")
    theirs = SwintormerConfig.from_dict(meta["swintormer_config"]).to_dict()
    ours = model.config.to_dict()
    # A file with a prior fixes the prior fusion too; a file without one leaves it to the run.
    differs = sorted(k for k in ours if (kind != "none" or k not in _PRIOR_FIELDS) and ours[k] != theirs.get(k))
    if differs:
        raise CheckpointError(
            f"{path}: its network differs from the one being trained in {', '.join(differs)} "
            f"(file {[theirs.get(k) for k in differs]}, run {[ours[k] for k in differs]})"
        )
    restorer, state = _split_tensors(path)
    load_restorer(model, restorer, str(path), new_prior=kind == "none")
    if kind == "latent" and prior is not None:
        missing, unexpected = prior.load_state_dict(state, strict=False)
        if relearn_target_encoder:
            missing = [k for k in missing if not f"prior.{k}".startswith(TRAINING_ONLY_PREFIXES)]
        if missing or unexpected:
            # An inference export leaves out the target encoder, which the prior and joint stages need.
            raise CheckpointError(
                f"{path}: its prior weights are incomplete for training (missing {sorted(missing)[:3]}, "
                f"unexpected {sorted(unexpected)[:3]}); fine-tune from a training checkpoint's model file, "
                "or give the run an encoder stage (stage_fractions: {encoder: 0.05, ...}) that learns it again"
            )


def load_restorer(model: Swintormer, state: dict[str, torch.Tensor], name: str, new_prior: bool = False) -> None:
    """Load restorer weights, with a clear message when the checkpoint and the network disagree on the prior.

    ``new_prior``: weights without a prior may go into a network with one (fine-tuning adds a prior), whose
    modulations then keep their zero initialisation."""
    has_prior_weights = any(k.startswith("prior_") for k in state)
    if has_prior_weights and not model.config.prior_channels:
        raise CheckpointError(
            f"{name}: this checkpoint was trained with a prior, but the network was built without one "
            "(prior_channels = 0); build it with the checkpoint's config (load_model does)"
        )
    if not has_prior_weights and model.config.prior_channels and not new_prior:
        raise CheckpointError(f"{name}: this checkpoint has no prior weights, but the network was built with a prior")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if new_prior and not has_prior_weights:
        missing = [k for k in missing if not k.startswith("prior_")]
    if missing or unexpected:
        raise CheckpointError(
            f"{name}: weights do not match the network "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
