"""Pages to look at (pages.py, eval --report, deblur --compare), rendered in a real headless Chromium.

The browser tests need Debian's `chromium` (`.ci/run` installs it when missing); without it they are skipped and
the rest of these tests still run.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from swintormer_cli import pages
from swintormer_cli.cli import app

from .helpers import gradient_image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (.ci/run installs it)")
# Awkward names on purpose: a space, non-ASCII letters, markup.
NAMES = ("a b", "ümlaut", "<b>")


def browser(page: Path, fragment: str, *args: str) -> subprocess.CompletedProcess:
    url = "file://" + quote(str(page.resolve())) + "#" + fragment
    command = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def check_in_browser(page: Path, tmp_path: Path, image_area: int) -> str:
    """Open the page: no console message, every image loaded, the slider changes what is shown (at least a third
    of one image's ``image_area`` in pixels). Returns the DOM."""
    dom = browser(page, "eager", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    body = re.search(r"<body[^>]*>", dom.stdout).group()
    loaded, total = map(int, re.search(r'data-images="(\d+)/(\d+)"', body).groups())
    assert loaded == total > 0 and 'data-broken=""' in body, body
    shots = []
    for percent in (0, 100):
        shot = tmp_path / f"shot-{percent}.png"
        result = browser(page, f"eager,compare={percent}", f"--screenshot={shot}", "--window-size=900,1400")
        assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
        shots.append(np.asarray(Image.open(shot).convert("RGB")).astype(int))
    changed = int((np.abs(shots[0] - shots[1]).sum(axis=2) > 0).sum())
    assert changed > image_area / 3, (changed, image_area)  # the pictures under the sliders, not just the knobs
    return dom.stdout


def test_text_is_escaped_and_links_are_relative_and_encoded(tmp_path):
    assert pages.text('<b>"x"&') == "&lt;b&gt;&quot;x&quot;&amp;"
    (tmp_path / "sub dir").mkdir()
    assert pages.link(tmp_path / "sub dir" / "ü <b>.png", tmp_path) == "sub%20dir/%C3%BC%20%3Cb%3E.png"
    svg = pages.bar_chart(["<b>", "ok"], [-1.0, 2.0], "gains")
    assert "&lt;b&gt;" in svg and "<b>" not in svg and "-1.00 dB" in svg and "+2.00 dB" in svg


def test_previews_are_downscaled(tmp_path):
    path = pages.write_preview(gradient_image(1200, 1800), tmp_path / "p.jpg")
    assert max(Image.open(path).size) == pages.PREVIEW_SIDE


def _pairs(root: Path) -> None:
    for i, name in enumerate(NAMES):
        sharp = gradient_image(96, 128, seed=i)
        for folder, pixels in (("target", sharp), ("source", (sharp * 0.8).astype(np.uint8)), ("other", sharp // 2)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / folder / f"{name}.png")


def test_eval_report_is_written_and_lists_every_image(tmp_path, model_file):
    root, report = tmp_path / "pairs set", tmp_path / "report dir"
    _pairs(root)
    args = ["eval", "--data-root", str(root), "--weights", str(model_file), "--no-lpips", "--gain-compensate"]
    result = CliRunner().invoke(app, [*args, "--report", str(report), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    html = (report / "index.html").read_text()
    for name in NAMES:
        assert f"<h3>{pages.text(name)} " in html
        assert (report / "full" / f"{name}.png").is_file()
    assert "<b>" not in html.replace("<body", "")  # the name is text, never markup
    assert html.count('class="compare"') == len(NAMES) and "other" in html  # the reference beside each
    # Worst first: the page's order is the report's gains, ascending.
    data = json.loads((tmp_path / "r.json").read_text())
    inputs = {i["name"]: i["gc_psnr"] for i in data["rows"][0]["images"]}
    gains = {i["name"]: i["gc_psnr"] - inputs[i["name"]] for i in data["rows"][1]["images"]}
    shown = [pages.text(n) for n in sorted(gains, key=gains.get)]
    assert [html.index(f"<h3>{n} ") for n in shown] == sorted(html.index(f"<h3>{n} ") for n in shown)


@needs_chromium
def test_eval_report_in_a_browser(tmp_path, model_file):
    root, report = tmp_path / "pairs ü", tmp_path / "report dir"
    _pairs(root)
    args = ["eval", "--data-root", str(root), "--weights", str(model_file), "--no-lpips", "--window", "32,64"]
    result = CliRunner().invoke(app, [*args, "--report", str(report)])  # a sweep: one section per setting
    assert result.exit_code == 0, result.output
    dom = check_in_browser(report / "index.html", tmp_path, 96 * 128)
    assert dom.count('class="compare"') == 2 * len(NAMES) and "mean gain per setting" in dom


@needs_chromium
def test_deblur_compare_page_in_a_browser(tmp_path, model_file):
    src = tmp_path / "in ü"
    src.mkdir()
    for i, name in enumerate(NAMES):
        Image.fromarray(gradient_image(96, 128, seed=i)).save(src / f"{name}.png")
    (src / "broken.png").write_bytes(b"not a png")
    page = tmp_path / "page ü.html"
    args = ["deblur", str(src), "-o", str(tmp_path / "out"), "--weights", str(model_file), "--window", "32"]
    result = CliRunner().invoke(app, [*args, "--compare", str(page), "--save-blur-map"])
    assert result.exit_code == 1  # one file failed; the others and the page are written
    dom = check_in_browser(page, tmp_path, 96 * 128)
    assert dom.count('class="compare"') == len(NAMES) and dom.count("blur map</figcaption>") == len(NAMES)
    assert "broken.png: not an image" in dom and "&lt;b&gt;.png" in dom
    assert len(list((tmp_path / "page ü_files" / "in").glob("*.jpg"))) == len(NAMES)


def test_compare_must_name_an_html_page(tmp_path, model_file):
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "a.png")
    args = ["deblur", str(tmp_path / "a.png"), "--weights", str(model_file), "--compare", str(tmp_path / "p.png")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--compare names the page to write" in result.output


def test_compare_previews_come_from_memory_for_files_deblurred_now(tmp_path, model_file, monkeypatch):
    """Only a skipped file (its output existed) is read back to make its previews; the others were made in memory."""
    from swintormer_cli.inference import compare_page

    read = []
    real = compare_page.read_image
    monkeypatch.setattr(compare_page, "read_image", lambda path, **kw: read.append(Path(path).name) or real(path, **kw))
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(3):
        Image.fromarray(gradient_image(40, 48, seed=i)).save(src / f"{i}.png")
    out.mkdir()
    Image.fromarray(gradient_image(40, 48, seed=9)).save(out / "2.png")  # already there: skipped
    page = tmp_path / "p.html"
    args = ["deblur", str(src), "-o", str(out), "--weights", str(model_file), "--window", "32", "--compare", str(page)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(read) == ["2.png", "2.png"]  # the skipped file's input and output
    html = page.read_text()
    assert html.count('class="compare"') == 3
    previews = sorted(p.name for p in (tmp_path / "p_files" / "out").glob("*.jpg"))
    assert previews == ["0.jpg", "1.jpg", "2.jpg"]
    # The in-memory preview of a deblurred file is the one its written output gives.
    from_file = pages.write_preview(np.asarray(Image.open(out / "0.png").convert("RGB")), tmp_path / "check.jpg")
    assert (tmp_path / "p_files" / "out" / "0.jpg").read_bytes() == from_file.read_bytes()
