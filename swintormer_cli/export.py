"""Turning a training run into a registered model: inference weights, registry entry, model card."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .checkpoint import CheckpointError, load_model, save_model
from .io import atomic_write_bytes
from .weights import ESTIMATOR_KIND, Registry, RegistryEntry, check_model_name, sha256_of, user_weights_dir


class ExportError(Exception):
    pass


def _checkpoint(run_dir: Path, which: str) -> tuple[Path, Path]:
    """(the EMA model file, the run directory)."""
    run_dir = Path(run_dir)
    if (run_dir / "ema.safetensors").is_file():
        return run_dir / "ema.safetensors", run_dir.parent.parent
    folder = run_dir / "checkpoints" / which
    if not (folder / "ema.safetensors").is_file():
        folder = run_dir / "checkpoints" / "last"
    if not (folder / "ema.safetensors").is_file():
        raise ExportError(f"{run_dir}: no checkpoints/{which}/ema.safetensors (is it a training run directory?)")
    return folder / "ema.safetensors", run_dir


def _check_name(name: str) -> None:
    try:
        check_model_name(name)  # it names the files written: nothing may land outside the folder
    except ValueError as exc:
        raise ExportError(str(exc)) from exc


def _destination(name: str, folder: str | Path | None) -> tuple[Registry, RegistryEntry | None]:
    """The registry an export writes into (its folder made) and the entry of that name it replaces, if any."""
    # By default into the user's weights folder, never into the installed package (a reinstall would lose it).
    registry = Registry.load(folder or user_weights_dir())
    registry.folder.mkdir(parents=True, exist_ok=True)
    # A re-export renews the weights, not what was said about them.
    previous = (registry if folder else Registry.load()).models.get(name)
    return registry, previous


def _write_card(registry: Registry, entry: RegistryEntry, run_config: dict) -> None:
    card = registry.folder / entry.card
    text = _refresh_card(card.read_text(), entry, run_config) if card.exists() else _card(entry, run_config)
    atomic_write_bytes(card, text.encode())


def export_run(
    run_dir: str | Path,
    name: str,
    which: str = "best",
    description: str | None = None,
    window: int | None = None,
    make_default: bool = False,
    folder: str | Path | None = None,
    recipe: str | None = None,
) -> tuple[RegistryEntry, Path]:
    """``recipe``: what reproduces the model when the run's own config does not alone (a script of several legs);
    by default the config the run was started with."""
    _check_name(name)
    source, run = _checkpoint(Path(run_dir), which)
    try:
        bundle = load_model(source)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from exc
    registry, previous = _destination(name, folder)
    if description is None:
        description = previous.description if previous else ""
    training = dict(bundle.training)
    # A run from before training records named their config keeps the recipe said of it, by hand or before.
    same_run = previous is not None and (previous.training or {}).get("run") == training.get("run")
    recipe = recipe or training.get("config") or (previous.recipe if same_run else None)
    config_file = run / "config.yaml"
    run_config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    window = window or bundle.trained_window
    training.update(exported=datetime.now(timezone.utc).isoformat(timespec="seconds"), checkpoint=str(source))
    target = registry.folder / f"{name}.safetensors"
    save_model(target, bundle.model, bundle.prior, training, inference_only=True)
    entry = RegistryEntry(
        name=name,
        file=target.name,
        sha256=sha256_of(target),
        description=description,
        recipe=recipe,
        preset=(run_config.get("model") or {}).get("preset", ""),
        prior=bundle.prior_kind,
        window=int(window) if window else None,
        card=f"{name}.md",
        training=training,
    )
    _write_card(registry, entry, run_config)
    registry.models[name] = entry
    # The first model of a registry becomes its default, unless the package's default already stands.
    if make_default or not (registry.default or (None if folder else Registry.load().default)):
        registry.default = name
    registry.save()
    return entry, target


_RECORD_HEADING = "## Training record"


def _recipe_command(train: str, recipe: str) -> str:
    """The command that runs a recipe: a script of legs, or one config (resumable either way)."""
    return f"sh {recipe}" if recipe.endswith(".sh") else f"{train} --config {recipe} --resume auto"


def _generated(entry: RegistryEntry, run_config: dict) -> str:
    return (
        f"{_RECORD_HEADING}\n\n```json\n" + json.dumps(entry.training, indent=2) + "\n```\n\n"
        "## Training configuration\n\n```yaml\n" + yaml.safe_dump(run_config, sort_keys=False) + "```\n"
    )


def _card(entry: RegistryEntry, run_config: dict) -> str:
    if entry.kind == ESTIMATOR_KIND:
        what, train = "- kind: blur estimator\n", "swintormer estimator train"
    else:
        what = f"- preset: {entry.preset}; prior: {entry.prior}; training window: {entry.window}\n"
        train = "swintormer train"
    return (
        f"# {entry.name}\n\n{entry.description}\n\n"
        + what
        + (f"- recipe: `{_recipe_command(train, entry.recipe)}`\n" if entry.recipe else "")
        + f"- sha256: `{entry.sha256}`\n\n"
        + _generated(entry, run_config)
    )


def _refresh_card(text: str, entry: RegistryEntry, run_config: dict) -> str:
    """Re-exporting keeps what was written by hand and renews what export wrote: the checksum line and the
    training record and configuration (a stale checksum in a card would contradict the registry)."""
    text = re.sub(r"^- sha256: `[0-9a-f]*`$", f"- sha256: `{entry.sha256}`", text, count=1, flags=re.MULTILINE)
    kept = text.split(_RECORD_HEADING, 1)[0].rstrip("\n")
    return kept + "\n\n" + _generated(entry, run_config)


def is_estimator_run(run_dir: str | Path) -> bool:
    """Whether a run folder is a blur estimator's (``swintormer estimator train``) rather than a restorer's."""
    from .models.blur_estimator import is_estimator_file
    from .training.blur_estimator import last_weights

    return is_estimator_file(last_weights(run_dir))


def export_estimator(
    run_dir: str | Path, name: str, description: str | None = None, folder: str | Path | None = None
) -> tuple[RegistryEntry, Path]:
    """A blur estimator's training run (``swintormer estimator train``) into a registry, as ``export_run`` does
    for a restorer: its EMA weights, an entry of kind ``blur-estimator`` and a model card to complete."""
    from .models.blur_estimator import load_estimator, save_estimator
    from .training.blur_estimator import last_weights

    _check_name(name)
    run = Path(run_dir)
    source = last_weights(run)
    if not source.is_file():
        raise ExportError(f"{run}: no {source.relative_to(run)} (is it a blur estimator run?)")
    try:
        estimator = load_estimator(source)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc
    registry, previous = _destination(name, folder)
    if description is None:
        description = previous.description if previous else ""
    training = dict(estimator.record)
    training.update(
        run=run.name, exported=datetime.now(timezone.utc).isoformat(timespec="seconds"), checkpoint=str(source)
    )
    target = registry.folder / f"{name}.safetensors"
    save_estimator(target, estimator, training)
    entry = RegistryEntry(
        name=name,
        file=target.name,
        sha256=sha256_of(target),
        description=description,
        recipe=training.get("config"),
        kind=ESTIMATOR_KIND,
        card=f"{name}.md",
        training=training,
    )
    config_file = run / "config.json"
    _write_card(registry, entry, json.loads(config_file.read_text()) if config_file.is_file() else {})
    registry.models[name] = entry
    registry.save()
    return entry, target
