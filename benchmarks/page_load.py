"""How long a `deblur --compare` page of many photos takes to open in headless Chromium.

    python benchmarks/page_load.py --files 500 --out benchmarks/results/page-load

Makes N entries of one synthetic 1600x1200 photo and its inverse (smooth shapes and fine texture, so its previews
compress like a photograph's; reused, but the page makes a preview per entry, as for a real batch), writes the
page with ``inference/compare_page``, and times Chromium from start to the page's load event (``--dump-dom``),
against an empty page in the same run, 3 times each. The page shows previews of at most 640 px, loaded as they
scroll into view. It also times writing the page both ways ``deblur --compare`` does: for files skipped (their
previews made from the files read back) and for files deblurred in the run (previews made from the pixels in
memory as each output is written, ``write_previews``). Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.harness import cpu_name, save_results  # noqa: E402
from swintormer_cli.inference.compare_page import CompareEntry, write_compare_page, write_previews  # noqa: E402


def open_seconds(chromium: str, page: Path) -> float:
    start = time.perf_counter()
    url = "file://" + quote(str(page.resolve()))
    subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        coarse = Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)).resize((1600, 1200), Image.BICUBIC)
        fine = rng.normal(0, 6, (1200, 1600, 3))
        photo = np.clip(np.asarray(coarse, dtype=np.float64) + fine, 0, 255).astype(np.uint8)
        Image.fromarray(photo).save(folder / "in.png", compress_level=1)
        Image.fromarray(255 - photo).save(folder / "out.png", compress_level=1)
        entries = [CompareEntry(folder / "in.png", folder / "out.png", "done", "", 1.0) for _ in range(args.files)]
        start = time.perf_counter()
        page = write_compare_page(folder / "page.html", entries, "synthetic batch")
        written = time.perf_counter() - start
        start = time.perf_counter()
        for i, entry in enumerate(entries):  # as a batch does, each as its output is written
            entry.previews = write_previews(folder / "memory.html", i, photo, 255 - photo)
        write_compare_page(folder / "memory.html", entries, "synthetic batch")
        from_memory = time.perf_counter() - start
        empty = folder / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body></body></html>")
        times = {"empty page": [], f"{args.files}-photo page": []}
        for _ in range(3):
            times["empty page"].append(open_seconds(chromium, empty))
            times[f"{args.files}-photo page"].append(open_seconds(chromium, page))
        size = page.stat().st_size
        previews = sum(p.stat().st_size for p in (folder / "page_files").rglob("*.jpg"))
    median = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        f"Opening a `deblur --compare` page in headless Chromium ({cpu_name()}; median of 3, from start to load):",
        "",
        "| page | seconds | vs empty page |",
        "|---|---|---|",
    ]
    for label, value in median.items():
        lines.append(f"| {label} | {value:.2f} | +{value - median['empty page']:.2f} s |")
    lines += [
        "",
        f"The page: {size / 1024:.0f} KiB of HTML, {previews / 2**20:.1f} MiB of previews in all (lazy-loaded); "
        f"writing it took {written:.1f} s for {args.files} photos of 1600x1200 with every file read back (skipped "
        f"files), {from_memory:.1f} s with the previews made from the pixels in memory (files deblurred in the run).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)

    record = {"cpu": cpu_name(), "files": args.files, "seconds": times, "html_bytes": size, "write_s": written,
              "write_from_memory_s": from_memory}  # fmt: skip
    save_results(args.out, text, record)


if __name__ == "__main__":
    main()
