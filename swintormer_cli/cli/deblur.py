"""`swintormer deblur`: files, folders and globs in; restored images out."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ModelFlags,
    debug_option,
    describe,
    device_option,
    err,
    escape,
    eta_option,
    inference_settings,
    interactive,
    keep_background_blur_option,
    load_bundle,
    make_pipeline,
    max_scale_option,
    memory_budget_option,
    model_option,
    precision_option,
    prior_steps_option,
    quiet_option,
    sampler_option,
    scale_and_strength,
    scale_option,
    seed_option,
    shift_option,
    show_traceback,
    state,
    strength_option,
    usage_error,
    weights_option,
    window_option,
    workers_option,
)


def deblur(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Image files, folders or quoted globs."),
    output: str | None = typer.Option(
        None, "-o", "--output", help="Output file (one input) or folder. Default: beside each input."
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into subfolders (mirrored under -o)."),
    suffix: str | None = typer.Option(None, help="Added to output names. Default: '' with -o, '_deblurred' without."),
    ext: str = typer.Option("auto", help="Output format: auto (same as input), png, jpg, webp or tiff."),
    quality: int = typer.Option(
        95, min=1, max=100, help="JPEG and lossy WebP quality (a lossless WebP input gives a lossless WebP output)."
    ),
    overwrite: bool = typer.Option(False, help="Replace existing outputs (default: skip them, so a batch resumes)."),
    strip_metadata: bool = typer.Option(False, help="Do not copy EXIF and the ICC profile to the outputs."),
    model: str | None = model_option(),
    weights: str | None = weights_option(),
    window: int | None = window_option(),
    shift: int | None = shift_option(),
    blend: str | None = typer.Option(None, help="Merge overlaps by average (the paper, the default) or feather."),
    memory_budget: str | None = memory_budget_option(),
    device: str = device_option(),
    precision: str = precision_option(),
    prior_steps: int | None = prior_steps_option(),
    sampler: str | None = sampler_option(),
    eta: float | None = eta_option(),
    seed: int | None = seed_option(),
    workers: int | None = workers_option(),
    scale: str | None = scale_option(),
    max_scale: float | None = max_scale_option(),
    strength: str | None = strength_option(),
    keep_background_blur: str | None = keep_background_blur_option(),
    save_blur_map: bool = typer.Option(
        False,
        help="Also write each input's estimated blur radius beside its output: NAME.blur.png (16-bit grey, "
        "1/100 px per level) and NAME.blur-preview.png (colours, with a scale).",
    ),
    compare: Path | None = typer.Option(
        None,
        "--compare",
        metavar="PAGE.html",
        help="Also write one page for the batch: each input beside its output with a before/after slider, the "
        "set-up line and each file's time (previews in PAGE_files/, linking to the full files).",
    ),
    right: Path | None = typer.Option(
        None,
        help="Dual-pixel models: the right views, a folder holding them under the inputs' names (the inputs are the "
        "left views), or one file for one input.",
    ),
    quiet: bool = quiet_option("Only errors, the set-up line and the summary."),
    debug: bool = debug_option(),
) -> None:
    """Deblur images: one file, several, folders (--recursive) or globs."""
    state.debug = state.debug or debug
    from ..launch import launch_info, rank_device

    _check_output_flags(compare, ext)
    try:
        plan = _plan(inputs, output, recursive, suffix, ext)
        dist = launch_info()
        flags = ModelFlags(
            model=model,
            weights=weights,
            device=rank_device(device, dist),
            precision=precision,
            memory_budget=memory_budget,
        )
        settings = inference_settings(
            window=window,
            shift=shift,
            blend=blend,
            prior_steps=prior_steps,
            sampler=sampler,
            eta=eta,
            seed=seed,
            workers=workers,
            **scale_and_strength(scale, max_scale, strength, keep_background_blur),
        )
        resolved, bundle = load_bundle(flags)
        _check_model_flags(bundle, save_blur_map, right, len(plan.jobs))
        pipe = make_pipeline(flags, settings, bundle, resolved.name)
    except KeyboardInterrupt:
        err.print("interrupted before any file was written")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    from ..inference.batch import shard

    jobs = shard(plan.jobs, dist.rank, dist.world)
    rank_note = f" | rank {dist.rank}/{dist.world}: {len(jobs)} of {len(plan.jobs)} files" if dist.enabled else ""
    setup = describe(pipe, resolved.origin) + rank_note
    err.print(setup)
    options = dict(
        overwrite=overwrite, quality=quality, strip_metadata=strip_metadata, right=right, save_blur_map=save_blur_map
    )
    page = None
    if compare is not None:
        page = compare.with_name(compare.stem + f".rank{dist.rank}" + compare.suffix) if dist.enabled else compare
    batch = _Batch(plan, page)
    started = time.perf_counter()
    _run(pipe, jobs, options, batch, quiet)
    if page is not None:
        _write_compare(page, batch, setup)
    seconds = time.perf_counter() - started
    counts = batch.counts
    rate = f", {batch.megapixels / seconds:.2f} MP/s" if counts["done"] else ""
    err.print(
        f"{counts['done']} deblurred, {counts['skipped']} skipped, {counts['failed']} failed"
        + (f", {plan.ignored_summary()}" if plan.ignored else "")
        + f" in {seconds:.1f} s{rate}"
    )
    raise typer.Exit(EXIT_FAILED if counts["failed"] else EXIT_OK)


def _check_output_flags(compare: Path | None, ext: str) -> None:
    from ..io import OUTPUT_FORMATS

    if compare is not None and compare.suffix.lower() not in (".html", ".htm"):
        raise usage_error(f"--compare names the page to write, an .html file, got {str(compare)!r}")
    if ext != "auto" and ext.lower() not in OUTPUT_FORMATS:
        raise usage_error(f"--ext must be auto, png, jpg, webp or tiff, got {ext!r}")


def _plan(inputs: list[str], output: str | None, recursive: bool, suffix: str | None, ext: str):
    """The batch's jobs; what cannot be deblurred is printed, and a batch with nothing to do exits 1."""
    from ..inference.batch import plan_jobs

    try:
        plan = plan_jobs(inputs, output, recursive=recursive, suffix=suffix, ext=ext)
    except ValueError as exc:
        raise usage_error(str(exc)) from exc
    for problem in plan.problems:
        err.print(f"[red]failed:[/] {escape(str(problem))}")
    if not plan.jobs:
        err.print("nothing to do: no readable inputs")
        raise typer.Exit(EXIT_FAILED)
    return plan


def _check_model_flags(bundle, save_blur_map: bool, right: Path | None, files: int) -> None:
    if save_blur_map and bundle.estimator is None:
        raise usage_error("--save-blur-map needs a blur estimator, and this model has none")
    if right is not None and bundle.config.in_views == 1:
        raise usage_error("--right gives dual-pixel right views, but this model takes single images")
    if right is not None and not right.is_dir() and files > 1:
        raise usage_error("--right is one file but there are several inputs: give the folder of right views")


class _Batch:
    """What a batch has done so far: counts by outcome, megapixels, and each file's entry for --compare (``page``),
    with the previews of each file deblurred made from the images in memory."""

    def __init__(self, plan, page: Path | None = None):
        from ..inference.compare_page import CompareEntry

        self.counts = {"done": 0, "skipped": 0, "failed": len(plan.problems)}
        self.megapixels = 0.0
        self.entries = [CompareEntry(p.path, p.path, "failed", str(p)) for p in plan.problems]
        self.page = page
        self._previews = None

    def preview_hook(self):
        """``deblur_file``'s ``on_written`` for the next file: its previews for the page (None without a page)."""
        from ..inference.compare_page import write_previews

        if self.page is None:
            return None
        index = len(self.entries)

        def write(source, output) -> None:
            try:
                self._previews = write_previews(self.page, index, source, output)
            except Exception:  # noqa: BLE001 - the page reads the files back instead, and says if it cannot
                self._previews = None

        return write

    def add(self, job, outcome) -> None:
        from ..inference.compare_page import CompareEntry

        self.counts[outcome.status] += 1
        self.megapixels += outcome.megapixels
        self.entries.append(
            CompareEntry(job.source, job.output, outcome.status, outcome.message, outcome.seconds, self._previews)
        )
        self._previews = None


def _run(pipe, jobs: list, options: dict, batch: _Batch, quiet: bool) -> None:
    """Deblur the jobs one by one, with bars for the files and the current file's tiles on a terminal."""
    from ..inference.batch import deblur_file
    from ..progress import Bars

    bars = Bars("{task.description}", console=err, enabled=interactive() and not quiet)
    files = bars.add("files", total=len(jobs))
    try:
        for index, job in enumerate(jobs, 1):
            tiles = bars.add(f"  {escape(job.source.name)}")

            def tile_progress(done: int, total: int, tiles=tiles) -> None:
                bars.update(tiles, completed=done, total=total)

            outcome = deblur_file(pipe, job, tile_progress=tile_progress, on_written=batch.preview_hook(), **options)
            batch.add(job, outcome)
            bars.remove(tiles)
            bars.advance(files)
            _say(bars, outcome, f"[{index}/{len(jobs)}]", quiet)
    except KeyboardInterrupt:
        bars.close()
        err.print(f"interrupted: {batch.counts['done']} written, no partial files left; run again to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    bars.close()


def _say(bars, outcome, position: str, quiet: bool) -> None:
    """One file's line: always its failure, else (without --quiet) what was written or skipped, and its notes."""
    job = outcome.job
    if outcome.status == "failed":
        bars.print(f"[red]failed:[/] {escape(outcome.message)}")
        show_traceback(outcome.error)
        return
    if quiet:
        return
    if outcome.status == "skipped":
        bars.print(escape(f"{position} skipped {job.output}: {outcome.message}"))
    else:
        rate = outcome.megapixels / max(outcome.seconds, 1e-9)
        bars.print(escape(f"{position} {job.source} -> {job.output} ({outcome.seconds:.1f} s, {rate:.2f} MP/s)"))
    for note in outcome.notes:
        bars.print(f"  note: {escape(note)}")


def _write_compare(page: Path, batch: _Batch, setup: str) -> None:
    from ..inference.compare_page import write_compare_page
    from ..io import FileWriteError

    try:
        err.print(f"compare page: {escape(str(write_compare_page(page, batch.entries, setup)))}")
    except FileWriteError as exc:
        err.print(f"[red]failed:[/] {escape(str(exc))}")
        batch.counts["failed"] += 1


__all__ = ["deblur"]
