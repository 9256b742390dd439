"""One deblur batch over a folder of broken and odd files: every good file has its output, every bad one is
named once, the exit status is 1, and nothing partial is left (the issue-23 fuzz folder)."""

import io
import os

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from swintormer_cli.cli import app
from swintormer_cli.io import read_image

from .helpers import gradient_image, png_header, truncated_jpeg, truncated_png


def _bytes(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def _fuzz_folder(folder):
    """(good files -> the size their output must have, bad files)."""
    folder.mkdir(parents=True)
    rgb = Image.fromarray(gradient_image(20, 24))
    good = {
        "palette.png": rgb.quantize(16),
        "palette-transparent.png": rgb.quantize(16),
        "cmyk.jpg": rgb.convert("CMYK"),
        "cmyk.tif": rgb.convert("CMYK"),
        "grey-alpha.png": rgb.convert("LA"),
        "grey16.png": Image.fromarray((gradient_image(20, 24, dtype=np.uint16)[..., 0]).astype(np.uint16)),
        "one-bit.png": rgb.convert("1"),
        "one-bit.tif": rgb.convert("1"),
        "фото ü 写真.png": rgb,
        "]bracket.png": rgb,  # in a folder named 'odd [': the path holds '[/]', a closing tag for rich
        "[bold]bold.png": rgb,
        "plain.webp": rgb,
        "plain.bmp": rgb,
    }
    sizes = {}
    for name, image in good.items():
        params = {"transparency": 0} if name == "palette-transparent.png" else {}
        image.save(folder / name, **params)
        sizes[name] = (20, 24)
    # Animated GIF: the first frame, written as PNG.
    frames = [Image.fromarray(gradient_image(20, 24, i)) for i in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    sizes["animated.gif"] = (20, 24)
    # EXIF orientation 6: stored 20x24, upright 24x20.
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb.save(folder / "rotated.jpg", exif=exif.tobytes(), quality=95)
    sizes["rotated.jpg"] = (24, 20)
    bad = {
        "zero.png": b"",
        "random.jpg": bytes(np.random.default_rng(7).integers(0, 256, 700, dtype=np.uint8)),
        "truncated.png": truncated_png(),
        "truncated.jpg": truncated_jpeg(),
        "text.png": b"this is a text file with an image's name\n",
        "bomb.png": png_header(100_000, 100_000),
        "header-only.jpg": _bytes(rgb, "JPEG")[:200],
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    (folder / "dangling.png").symlink_to(folder / "nothing-here.png")
    bad["dangling.png"] = None
    # Ignored, and counted: a text file, a hidden file, a FIFO (never opened), a folder.
    (folder / "notes.txt").write_text("not an image")
    rgb.save(folder / ".hidden.png")
    os.mkfifo(folder / "pipe.png")
    (folder / "folder.png").mkdir()
    return sizes, sorted(bad)


def test_one_batch_over_broken_and_odd_files(tmp_path, model_file):
    src, out = tmp_path / "odd [", tmp_path / "out"
    sizes, bad = _fuzz_folder(src)
    result = CliRunner().invoke(
        app, ["deblur", str(src), "-o", str(out), "--weights", str(model_file), "--window", "32"]
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    # Every good file has its output, complete and upright; the animated GIF and the BMP become PNG.
    expected = {n if n.endswith((".png", ".jpg", ".tif", ".webp")) else n.rsplit(".", 1)[0] + ".png" for n in sizes}
    assert {p.name for p in out.iterdir()} == expected  # and nothing else: no partial file, no output of a bad one
    for name, (height, width) in sizes.items():
        output = out / (name if name in expected else name.rsplit(".", 1)[0] + ".png")
        assert read_image(output).pixels.shape == (height, width, 3), name
    assert read_image(out / "grey16.png").bit_depth == 16 and read_image(out / "grey16.png").grey
    assert read_image(out / "grey-alpha.png").alpha is not None
    assert "only the first of its 3 frames" in result.stderr
    # Every bad file is named, once, with its reason on the same line.
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed) == len(bad), result.stderr
    for name in bad:
        assert sum(line.startswith(f"failed: {src / name}: ") for line in failed) == 1, name
    assert "] bracket" not in result.stderr and f"{src / ']bracket.png'}" in result.stderr
    assert f"{src / '[bold]bold.png'}" in result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith(f"{len(sizes)} deblurred, 0 skipped, {len(bad)} failed, 4 ignored"), summary
