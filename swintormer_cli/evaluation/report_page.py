"""`eval --report DIR`: the run as a page to look at, ``DIR/index.html`` with its previews under ``DIR/previews``.

The page holds the run's settings, model and versions, the averages table, then one section per model setting
(a sweep has several, with a plot of each setting's mean gain first): a plot of every image's gain, and the
images worst first, each with its scores, a before/after slider (the blurry input against that setting's
output), and the target and reference outputs (e.g. ``dpdnet/``) beside them. Previews link to the full files:
the inputs, targets and references where they lie, the outputs where ``--save-images`` (by default
``DIR/full``) wrote them. Built with ``swintormer_cli/pages.py``.
"""

from __future__ import annotations

from pathlib import Path

from .. import pages
from .datasets import EvalSet, load_pixels
from .runner import EvalReport, image_folder

INDEX = "index.html"


def _gain_metric(report: EvalReport) -> str:
    return "gc_psnr" if report.run.get("gain_compensate") else "psnr"


class _Pictures:
    """The previews of one report, each made once (``previews/KIND/NAME.jpg``); what cannot be read is listed."""

    def __init__(self, folder: Path, bits: int):
        self.folder, self.bits = folder / "previews", bits
        self.made: dict[tuple[str, str], pages.Picture | None] = {}
        self.failed: list[str] = []

    def __call__(self, path: Path, kind: str, name: str, label: str) -> pages.Picture | None:
        if (kind, name) not in self.made:
            target = self.folder / kind / f"{name}.jpg"
            try:
                pages.write_preview(load_pixels(path, self.bits), target)
                self.made[kind, name] = pages.Picture(target, path)
            except Exception as exc:  # noqa: BLE001 - a picture that cannot be shown is listed, the page goes on
                self.failed.append(f"{path}: {type(exc).__name__}: {exc}")
                self.made[kind, name] = None
        found = self.made[kind, name]
        return None if found is None else pages.Picture(found.preview, found.full, label)


def write_report_page(report: EvalReport, eval_set: EvalSet, folder: Path, outputs: Path) -> Path:
    """Write the report's page and previews into ``folder``; the restored images are in ``outputs``."""
    folder = Path(folder)
    metric = _gain_metric(report)
    pictures = _Pictures(folder, eval_set.bits)
    page = pages.Page(f"swintormer eval: {report.dataset['name']} ({report.dataset['images']} images)")
    page.add(_settings(report, metric))
    page.add("<h2>Averages</h2>" + _averages(report, metric))
    for note in report.notes:
        page.add(f"<p>note: {pages.text(note)}</p>")
    model_rows = [r for r in report.rows if r.kind == "model"]
    if len(model_rows) > 1:
        labels = [r.label.removeprefix("model: ") for r in model_rows]
        gains = [r.gain.get(metric, 0.0) for r in model_rows]
        page.add(pages.bar_chart(labels, gains, f"mean gain per setting ({_metric_name(metric)})"))
    for index, row in enumerate(model_rows):
        out_dir = image_folder(outputs, _slug(row.setting), len(model_rows))
        page.add(_setting_section(report, eval_set, row, index, out_dir, pictures, folder, metric))
    if pictures.failed:
        listed = "".join(f'<li class="failed">{pages.text(f)}</li>' for f in pictures.failed)
        page.add(f"<h2>Images that could not be shown</h2><ul>{listed}</ul>")
    return page.write(folder / INDEX)


def _metric_name(metric: str) -> str:
    return "gain-compensated PSNR" if metric == "gc_psnr" else "PSNR"


def _settings(report: EvalReport, metric: str) -> str:
    model, run = report.model, report.run
    sha = str(model.get("sha256", ""))[:16]
    region = f"; {run['region']}" if run.get("region") else ""
    lines = [
        f"model      {model.get('name', '')} ({model.get('origin', '')}), sha256 {sha}...",
        f"device     {model.get('device', '')}, {model.get('precision', '')}; seed {model.get('seed', '')}",
        f"scale      {model.get('scale', '')}; strength {model.get('strength', 1.0)}; kept background blur "
        f"{model.get('keep_background_blur') or 'none'}",
        f"data       {report.dataset['root']} ({report.dataset['images']} images, {report.dataset['bits']}-bit)",
        f"scored     gains in {_metric_name(metric)}{region}",
        f"run        {run.get('date', '')}; " + ", ".join(f"{k} {v}" for k, v in run.get("versions", {}).items()),
    ]
    return f'<div class="settings">{pages.text(chr(10).join(lines))}</div>'


def _averages(report: EvalReport, metric: str) -> str:
    rows = []
    for row in report.rows:
        a = row.averages["all"]
        per_image = row.seconds / max(1, len(row.images)) if row.kind == "model" else None
        rows.append(
            [
                row.label,
                pages.number(a.get("psnr")),
                pages.number(a.get("ssim"), 4),
                pages.number(a.get("gc_psnr")),
                pages.number(row.gain.get(metric), signed=True) if row.gain else "",
                pages.number(per_image, 1) if per_image is not None else "",
            ]
        )
    header = ["", "PSNR", "SSIM", "gain-comp. PSNR", f"gain ({_metric_name(metric)})", "s/image"]
    return pages.table(header, rows)


def _setting_section(report, eval_set, row, index, out_dir, pictures, folder, metric) -> str:
    """One model setting: its per-image gain plot, then every image worst first."""
    inputs = {i["name"]: i for i in report.rows[0].images}
    gains = {i["name"]: _gain(i, inputs[i["name"]], metric) for i in row.images}
    order = sorted(gains, key=lambda n: gains[n])
    plot = pages.bar_chart(order, [gains[n] for n in order], f"gain per image, worst first ({_metric_name(metric)})")
    parts = [f'<h2 id="setting-{index}">{pages.text(row.label)}</h2>', plot]
    items = {item.name: item for item in eval_set.items}
    references = [r for r in report.rows if r.kind == "reference"]
    for name in order:
        item = items[name]
        scored = [("input (blurry)", inputs[name]), (row.label.removeprefix("model: "), _of(row, name))]
        scored += [(r.label, _of(r, name)) for r in references]
        table = pages.table(
            ["", "PSNR", "SSIM", "gain-comp. PSNR", "gain"],
            [_score_cells(label, s, inputs[name], metric, first=i == 0) for i, (label, s) in enumerate(scored)],
        )
        blurry = pictures(item.sources[0], "input", name, "input")
        restored = pictures(out_dir / f"{name}.png", f"output/{_slug(row.setting)}", name, "output")
        beside = [pictures(item.target, "target", name, "target")]
        for r in references:
            ref_name = r.label.removeprefix("reference: ")
            beside.append(pictures(eval_set.references[ref_name] / item.target.name, ref_name, name, ref_name))
        view = (
            pages.compare(blurry, restored, folder)
            if blurry and restored
            else '<p class="failed">no preview (see the images that could not be shown, below)</p>'
        )
        figures = "".join(pages.figure(p, folder) for p in beside if p is not None)
        tone = "good" if gains[name] >= 0 else "bad"
        parts.append(
            f'<div class="item"><h3>{pages.text(name)} <span class="{tone}">{gains[name]:+.2f} dB</span></h3>'
            f'{table}<div class="row">{view}<div class="side">{figures}</div></div></div>'
        )
    return "\n".join(parts)


def _of(row, name: str) -> dict:
    return next(i for i in row.images if i["name"] == name)


def _score_cells(label: str, scores: dict, base: dict, metric: str, first: bool) -> list[str]:
    gain = "" if first else pages.number(_gain(scores, base, metric), signed=True)
    return [
        label,
        pages.number(scores.get("psnr")),
        pages.number(scores.get("ssim"), 4),
        pages.number(scores.get("gc_psnr")),
        gain,
    ]


def _gain(scores: dict, base: dict, metric: str) -> float:
    value, reference = scores.get(metric), base.get(metric)
    return float(value - reference) if value is not None and reference is not None else 0.0


def _slug(setting: dict | None) -> str:
    from .runner import Setting

    return Setting(**setting).slug if setting else ""
