"""`swintormer weights list | download NAME | verify | export RUN_DIR NAME`."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import EXIT_FAILED, err, failure, out, usage_error

app = typer.Typer(
    help="Registered models: list, download from the Hub, verify checksums, export a trained run.", no_args_is_help=True
)


def _size(path: Path | None) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB" if path and path.is_file() else "-"


@app.command("list")
def list_models() -> None:
    """Registered models, where each one is, and which is the default."""
    from rich.table import Table

    from ..weights import Registry, cached_path

    registry = Registry.load()
    if not registry.models:
        out.print(
            f"No models registered in {registry.folder}. Train one: `swintormer train --config "
            "configs/tiny-cpu.yaml`, then `swintormer weights export RUN_DIR NAME`."
        )
        return
    table = Table(title=f"Models ({registry.folder})")
    for column in ("name", "default", "preset", "prior", "window", "where", "size", "description"):
        table.add_column(column)
    for name, entry in sorted(registry.models.items()):
        embedded = registry.folder / entry.file
        if embedded.is_file():
            where, path = "embedded", embedded
        else:
            path = cached_path(entry)
            where = "HF cache" if path else ("Hub" if (entry.hub or {}).get("repo_id") else "missing")
        table.add_row(
            name,
            "yes" if name == registry.default else "",
            entry.preset,
            entry.prior,
            str(entry.window or "-"),
            where,
            _size(path),
            entry.description,
        )
    out.print(table)


@app.command()
def download(name: str = typer.Argument(..., help="A registered model name.")) -> None:
    """Fetch a model into the Hugging Face cache (pinned revision, sha256 checked)."""
    from ..weights import Registry, WeightsError, hub_download, verify_file

    try:
        entry = Registry.load().get(name)
        path = hub_download(entry)
        digest = verify_file(path, entry, "Hugging Face cache")
    except WeightsError as exc:
        raise failure(str(exc)) from exc
    out.print(f"{name}: {path} (sha256 {digest[:16]}... verified)")


@app.command()
def verify() -> None:
    """Check the sha256 of every model file present (embedded and cached)."""
    from ..weights import Registry, cached_path, sha256_of

    registry = Registry.load()
    bad = 0
    for name, entry in sorted(registry.models.items()):
        embedded = registry.folder / entry.file
        found = [("embedded", embedded)] if embedded.is_file() else []
        cached = cached_path(entry)
        if cached:
            found.append(("HF cache", cached))
        if not found:
            out.print(f"{name}: not present (download it with `swintormer weights download {name}`)")
        for where, path in found:
            digest = sha256_of(path)
            if digest == entry.sha256:
                out.print(f"{name}: {where} {path} ok")
            else:
                bad += 1
                err.print(f"[red]{name}: {where} {path} sha256 {digest[:16]}... expected {entry.sha256[:16]}...[/]")
    if bad:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A training run directory (or a checkpoint folder inside it)."),
    name: str = typer.Argument(..., help="Name to register the model under."),
    which: str = typer.Option("best", help="Checkpoint to export: best or last."),
    description: str | None = typer.Option(
        None, help="One line for `weights list` (default: the existing entry's, when re-exporting)."
    ),
    shift: int | None = typer.Option(None, help="Default shift to record (default: 3/4 of the window)."),
    window: int | None = typer.Option(None, help="Default window to record (default: the run's validation window)."),
    make_default: bool = typer.Option(False, "--default", help="Make it the registry's default model."),
    folder: Path | None = typer.Option(None, help="Weights folder to write into (default: the embedded one)."),
) -> None:
    """Write a trained run's EMA weights into the weights folder with a registry entry and a card."""
    from ..training.export import ExportError, export_run
    from ..weights import check_model_name

    if which not in ("best", "last"):
        raise usage_error("--which must be best or last")
    try:
        check_model_name(name)
    except ValueError as exc:
        raise usage_error(str(exc)) from exc
    try:
        entry, path = export_run(
            run_dir,
            name,
            which=which,
            description=description,
            window=window,
            shift=shift,
            make_default=make_default,
            folder=folder,
        )
    except ExportError as exc:
        raise failure(str(exc)) from exc
    out.print(f"exported {name}: {path} ({_size(path)}, sha256 {entry.sha256[:16]}...)")
