"""`swintormer weights list | download NAME | verify | export RUN_DIR NAME`."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import EXIT_FAILED, err, escape, failure, json_option, out, print_json, usage_error

app = typer.Typer(
    help="Registered models: list, download from the Hub, verify checksums, export a trained run.", no_args_is_help=True
)


def _size(path: Path | None) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB" if path and path.is_file() else "-"


def _registry():
    """The registry (the embedded one with the user's laid over it); a broken one is a one-line error."""
    from ..weights import Registry, WeightsError

    try:
        return Registry.load()
    except WeightsError as exc:
        raise failure(str(exc)) from exc


def _local(entry) -> Path | None:
    path = entry.local_path
    return path if path is not None and path.is_file() else None


def _where(entry) -> tuple[Path | None, str]:
    """The model's file, if it is anywhere here, and where: its registry's origin, the HF cache, the Hub, missing."""
    from ..weights import cached_path

    path = _local(entry)
    if path is not None:
        return path, entry.origin
    path = cached_path(entry)
    return path, "HF cache" if path else ("Hub" if (entry.hub or {}).get("repo_id") else "missing")


def _json_entry(name: str, entry, default: str | None) -> dict:
    path, where = _where(entry)
    return {
        "name": name,
        "default": name == default,
        "kind": entry.kind or "model",
        "preset": entry.preset or None,
        "prior": None if entry.kind else entry.prior,
        "window": entry.window,
        "where": where,
        "path": str(path) if path else None,
        "bytes": path.stat().st_size if path else None,
        "sha256": entry.sha256,
        "recipe": entry.recipe,
        "description": entry.description,
    }


@app.command("list")
def list_models(as_json: bool = json_option()) -> None:
    """Registered models, where each one is, and which is the default."""
    from rich.table import Table

    from ..weights import user_weights_dir, weights_dir

    registry = _registry()
    folders = f"embedded: {weights_dir()}; user: {user_weights_dir()}"
    if as_json:
        print_json(
            {
                "embedded": str(weights_dir()),
                "user": str(user_weights_dir()),
                "default": registry.default,
                "models": [
                    _json_entry(name, entry, registry.default) for name, entry in sorted(registry.models.items())
                ],
            }
        )
        return
    if not registry.models:
        out.print(
            escape(
                f"No models registered ({folders}). Train one: `swintormer train --config "
                "configs/tiny-cpu.yaml`, then `swintormer weights export RUN_DIR NAME`."
            )
        )
        return
    table = Table(title=escape(f"Models ({folders})"))
    for column in ("name", "default", "preset", "prior", "window", "where", "size", "description"):
        table.add_column(column)
    for name, entry in sorted(registry.models.items()):
        path, where = _where(entry)
        table.add_row(
            *(
                escape(str(cell))
                for cell in (
                    name,
                    "yes" if name == registry.default else "",
                    entry.kind or entry.preset,
                    "-" if entry.kind else entry.prior,
                    entry.window or "-",
                    where,
                    _size(path),
                    entry.description,
                )
            )
        )
    out.print(table)


@app.command()
def download(name: str = typer.Argument(..., help="A registered model name.")) -> None:
    """Fetch a model into the Hugging Face cache (pinned revision, sha256 checked)."""
    from ..weights import WeightsError, hub_download, verify_file

    try:
        entry = _registry().get(name)
        path = hub_download(entry)
        digest = verify_file(path, entry, "Hugging Face cache")
    except WeightsError as exc:
        raise failure(str(exc)) from exc
    out.print(escape(f"{name}: {path} (sha256 {digest[:16]}... verified)"))


@app.command()
def verify() -> None:
    """Check the sha256 of every model file present (user, embedded and cached)."""
    from ..weights import WeightsError, cached_path, verify_file

    registry = _registry()
    bad = 0
    for name, entry in sorted(registry.models.items()):
        local = _local(entry)
        found = [(entry.origin, local)] if local is not None else []
        cached = cached_path(entry)
        if cached:
            found.append(("HF cache", cached))
        if not found:
            out.print(escape(f"{name}: not present (download it with `swintormer weights download {name}`)"))
        for where, path in found:
            try:
                verify_file(path, entry, where)
            except WeightsError as exc:
                bad += 1
                err.print(f"[red]{escape(str(exc))}[/]")
            else:
                out.print(escape(f"{name}: {where} {path} ok"))
    if bad:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A training run directory (or a checkpoint folder inside it)."),
    name: str = typer.Argument(..., help="Name to register the model under (letters, digits, '.', '_', '+', '-')."),
    which: str = typer.Option("best", help="Checkpoint to export: best or last."),
    description: str | None = typer.Option(
        None, help="One line for `weights list` (default: the existing entry's, when re-exporting)."
    ),
    window: int | None = typer.Option(None, help="Default window to record (default: the run's validation window)."),
    make_default: bool = typer.Option(False, "--default", help="Make it the registry's default model."),
    recipe: str | None = typer.Option(
        None,
        help="What reproduces the model, when more than the run's own config does: a script of several legs "
        "(e.g. configs/tiny-channel-latent.sh). Default: the config the run was started with.",
    ),
    folder: Path | None = typer.Option(
        None,
        help="Weights folder to write into (default: the user's, $SWINTORMER_HOME/weights or "
        "<HF_HOME>/swintormer/weights; give the source checkout's weights/ to change the shipped models).",
    ),
) -> None:
    """Write a trained run's EMA weights into a weights folder with a registry entry and a model card (a blur
    estimator's run, from `swintormer estimator train`, is registered as one)."""
    from ..export import ExportError, export_estimator, export_run, is_estimator_run
    from ..weights import WeightsError, check_model_name

    if which not in ("best", "last"):
        raise usage_error("--which must be best or last")
    try:
        check_model_name(name)
    except ValueError as exc:
        raise usage_error(str(exc)) from exc
    if is_estimator_run(run_dir):
        try:
            entry, path = export_estimator(run_dir, name, description=description, folder=folder)
        except (ExportError, WeightsError) as exc:
            raise failure(str(exc)) from exc
        out.print(escape(f"exported blur estimator {name}: {path} ({_size(path)}, sha256 {entry.sha256[:16]}...)"))
        return
    try:
        entry, path = export_run(
            run_dir,
            name,
            which=which,
            description=description,
            window=window,
            make_default=make_default,
            folder=folder,
            recipe=recipe,
        )
    except (ExportError, WeightsError) as exc:
        raise failure(str(exc)) from exc
    out.print(escape(f"exported {name}: {path} ({_size(path)}, sha256 {entry.sha256[:16]}...)"))
