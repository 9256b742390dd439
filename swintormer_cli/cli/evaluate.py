"""`swintormer eval`: a model scored on the DPDD protocol or paired folders, for one setting or a sweep."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import (
    SHIFT_DEFAULT,
    STEPS_DEFAULT,
    WINDOW_DEFAULT,
    ModelFlags,
    debug_option,
    describe,
    device_option,
    err,
    escape,
    eta_option,
    failure,
    inference_settings,
    keep_background_blur_option,
    load_bundle,
    make_pipeline,
    max_scale_option,
    memory_budget_option,
    model_option,
    out,
    parse_list,
    parse_number,
    precision_option,
    quiet_option,
    sampler_option,
    scale_and_strength,
    scale_option,
    seed_option,
    setting_error,
    show_traceback,
    state,
    strength_option,
    usage_error,
    weights_option,
    workers_option,
)


def evaluate(
    dataset: str = typer.Option("pairs", help="dpdd (the DPDD test tree) or pairs (a source/ + target/ folder)."),
    data_root: Path = typer.Option(..., help="The DPDD root or the paired folder."),
    views: str = typer.Option("single", help="dpdd: single (8-bit centre view) or dual (16-bit left/right)."),
    model: str | None = model_option(),
    weights: str | None = weights_option(),
    window: str | None = typer.Option(
        None, help=f"Tile size, or a comma list to sweep (e.g. 256,512). {WINDOW_DEFAULT}"
    ),
    shift: str | None = typer.Option(None, help=f"Tile shift, or a comma list. {SHIFT_DEFAULT}"),
    blend: str = typer.Option("average", help="average, feather, or both: average,feather."),
    prior_steps: str | None = typer.Option(
        None,
        help=f"Prior sampling steps, or a comma list (e.g. 5,10,20,50). {STEPS_DEFAULT}",
    ),
    sampler: str | None = sampler_option(),
    eta: float | None = eta_option(),
    seed: int | None = seed_option(),
    workers: int | None = workers_option(),
    scale: str | None = scale_option(),
    max_scale: float | None = max_scale_option(),
    strength: str | None = strength_option(),
    keep_background_blur: str | None = keep_background_blur_option(),
    score_in_focus: str | None = typer.Option(
        None,
        metavar="RADIUS",
        help="Score only the pixels whose estimated blur radius in the blurry input is at most RADIUS px (the "
        "in-focus region; with --keep-background-blur, what was restored). Every row is scored on the same pixels.",
    ),
    device: str = device_option(),
    precision: str = precision_option(),
    memory_budget: str | None = memory_budget_option(),
    gain_compensate: bool = typer.Option(
        False, help="Add gain-compensated PSNR (for real pairs whose exposure differs)."
    ),
    lpips: bool = typer.Option(True, help="Compute LPIPS when the lpips package and its weights are available."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the full report (per image) as JSON."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Write per-image rows and averages as CSV."),
    save_images: Path | None = typer.Option(None, help="Write the restored images into this folder."),
    report_dir: Path | None = typer.Option(
        None,
        "--report",
        help="Write a page to look at into this folder (index.html: settings, scores, every image worst first with a "
        "before/after slider, plots); the restored images go to its full/ unless --save-images says where.",
    ),
    quiet: bool = quiet_option("Only errors, the set-up line, the notes and the scores (no progress, no sweep lines)."),
    debug: bool = debug_option(),
) -> None:
    """Score a model against ground truth; the blurry input's scores come first."""
    state.debug = state.debug or debug
    from ..evaluation.runner import InFocus, LPIPSMetric, model_record
    from ..evaluation.runner import evaluate as run_eval
    from ..progress import Bars

    eval_set = _eval_set(dataset, views, data_root)
    flags = ModelFlags(model=model, weights=weights, device=device, precision=precision, memory_budget=memory_budget)
    base = inference_settings(
        sampler=sampler,
        eta=eta,
        seed=seed,
        workers=workers,
        **scale_and_strength(scale, max_scale, strength, keep_background_blur),
    )
    in_focus = parse_number("--score-in-focus", score_in_focus, "a radius in pixels")
    if in_focus is not None and not in_focus > 0:
        raise usage_error(f"--score-in-focus must be a positive radius in pixels, got {score_in_focus}")
    if report_dir is not None and save_images is None:
        save_images = report_dir / "full"
    resolved, bundle = load_bundle(flags)
    if in_focus is not None and bundle.estimator is None:
        raise usage_error("--score-in-focus needs a blur estimator, and this model has none")
    if bundle.model.config.in_views != eval_set.views:
        raise usage_error(f"the model takes {bundle.model.config.in_views} view(s) but the data has {eval_set.views}")
    settings = _sweep(bundle, base, window, shift, blend, prior_steps, quiet)

    def build(setting):
        return make_pipeline(flags, setting.applied_to(base), bundle, resolved.name)

    first = build(settings[0])
    err.print(describe(first, resolved.origin))
    try:
        with Bars("{task.description}", console=err, enabled=not quiet and err.is_terminal, transient=True) as bars:
            task = bars.add("evaluating", total=len(eval_set.items) * len(settings))

            def tick(name, done, total):
                bars.update(task, completed=done, description=escape(f"evaluating {name}"))

            report = run_eval(
                eval_set,
                lambda s: first if s == settings[0] else build(s),
                settings,
                gain_compensate=gain_compensate,
                lpips_metric=LPIPSMetric(lpips),
                save_images=save_images,
                on_image=tick,
                model_info=model_record(resolved, bundle, first),
                in_focus=InFocus(first, in_focus) if in_focus is not None else None,
            )
    except (ValueError, MemoryError) as exc:
        show_traceback(exc)
        raise failure(str(exc)) from exc
    _write(report, eval_set, json_path, csv_path, report_dir, save_images)


def _eval_set(dataset: str, views: str, data_root: Path):
    from ..evaluation.datasets import dpdd_set, pairs_set

    if dataset not in ("dpdd", "pairs"):
        raise usage_error(f"--dataset must be dpdd or pairs, got {dataset!r}")
    if views not in ("single", "dual"):
        raise usage_error(f"--views must be single or dual, got {views!r}")
    try:
        return dpdd_set(data_root, views) if dataset == "dpdd" else pairs_set(data_root)
    except (FileNotFoundError, ValueError) as exc:
        raise failure(str(exc)) from exc


def _sweep(bundle, base, window, shift, blend, prior_steps, quiet: bool) -> list:
    """The settings to run: the grid of the comma lists, each checked; combinations with shift > window left out."""
    from ..evaluation.runner import sweep

    model_args = dict(min_window=bundle.model.config.min_window, model=bundle.inference_defaults)
    try:
        default_steps = base.resolve(**model_args).prior_steps
        steps = (parse_list(prior_steps, int) or [default_steps]) if bundle.prior is not None else [None]
        windows, shifts = parse_list(window, int) or [None], parse_list(shift, int) or [None]
        settings, skipped = sweep(windows, shifts, parse_list(blend), steps, base, **model_args)
    except ValueError as exc:
        raise setting_error(exc) from exc
    for s in skipped:
        if not quiet:
            err.print(f"sweep: left out {s}")
    if not settings:
        raise usage_error("no valid window/shift combination to run")
    return settings


def _write(report, eval_set, json_path: Path | None, csv_path: Path | None, report_dir: Path | None, images) -> None:
    """The tables on screen, the notes, and the files asked for."""
    from ..evaluation.report import tables, write_csv, write_json

    for table in tables(report):
        out.print(table)
    for note in report.notes:
        err.print(f"note: {note}")
    if json_path:
        write_json(report, json_path)
    if csv_path:
        write_csv(report, csv_path)
    if report_dir is not None:
        from ..evaluation.report_page import write_report_page

        page = write_report_page(report, eval_set, report_dir, images)
        err.print(f"report: {escape(str(page))}")


__all__ = ["evaluate"]
