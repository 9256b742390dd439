import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from typer.testing import CliRunner

from swintormer_cli.cli import app
from swintormer_cli.inference import DeblurPipeline
from swintormer_cli.inference.batch import Job, deblur_file, plan_jobs, shard
from swintormer_cli.inference.device import native_bf16_cpu
from swintormer_cli.io import read_image

from .helpers import gradient_image, png_header, tiny_model, truncated_jpeg

runner = CliRunner()


def run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def _tree(root):
    (root / "a" / "b").mkdir(parents=True)
    (root / ".hidden").mkdir()
    Image.fromarray(gradient_image(40, 56, 0)).save(root / "one.png")
    Image.fromarray(gradient_image(33, 47, 1)).save(root / "a" / "two.jpg", quality=95)
    Image.fromarray(gradient_image(24, 24, 2)).save(root / "a" / "b" / "three.webp")
    Image.fromarray(gradient_image(24, 24, 3)).save(root / ".hidden" / "skip.png")
    (root / "notes.txt").write_text("not an image")


def test_recursive_folder_batch_mirrors_the_tree_and_resumes(tmp_path, model_file):
    src, out = tmp_path / "in", tmp_path / "out"
    _tree(src)
    result = run("deblur", src, "-o", out, "--recursive", "--weights", model_file, "--window", 32)
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a/b/three.webp", "a/two.jpg", "one.png"]
    assert read_image(out / "a" / "two.jpg").pixels.shape == (33, 47, 3)
    # auto: bf16 where the CPU computes it natively, else fp32; the set-up line says which and why.
    expected = "precision bf16 (auto: native" if native_bf16_cpu() else "precision fp32 (auto: no native"
    assert "device cpu" in result.stderr and expected in result.stderr
    again = run("deblur", src, "-o", out, "--recursive", "--weights", model_file, "--window", 32)
    assert again.exit_code == 0 and "0 deblurred, 3 skipped, 0 failed" in again.stderr
    over = run("deblur", src, "-o", out, "--recursive", "--weights", model_file, "--window", 32, "--overwrite", "-q")
    assert over.exit_code == 0 and "3 deblurred" in over.stderr


def test_without_recursive_only_the_top_folder(tmp_path, model_file):
    src = tmp_path / "in"
    _tree(src)
    result = run("deblur", src, "-o", tmp_path / "out", "--weights", model_file, "--window", 32)
    assert result.exit_code == 0
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == ["one.png"]


def test_single_file_to_file_and_default_names(tmp_path, model_file):
    img = tmp_path / "x.png"
    Image.fromarray(gradient_image(30, 30)).save(img)
    assert run("deblur", img, "-o", tmp_path / "y.jpg", "--weights", model_file, "--window", 32).exit_code == 0
    assert read_image(tmp_path / "y.jpg").format == "JPEG"
    assert run("deblur", img, "--weights", model_file, "--window", 32, "--ext", "webp").exit_code == 0
    assert (tmp_path / "x_deblurred.webp").is_file()


def test_16bit_in_gives_16bit_out(tmp_path, model_file):
    img = tmp_path / "deep.png"
    import cv2

    cv2.imwrite(str(img), gradient_image(30, 40, dtype=np.uint16)[..., ::-1])
    result = run("deblur", img, "-o", tmp_path / "out.png", "--weights", model_file, "--window", 32)
    assert result.exit_code == 0, result.output
    out = read_image(tmp_path / "out.png")
    assert out.bit_depth == 16 and out.pixels.shape == (30, 40, 3)
    assert len(np.unique(out.pixels)) > 256  # really 16-bit values, not 8-bit scaled up


def test_rgba_alpha_survives_the_cli_bit_for_bit(tmp_path, model_file):
    alpha = np.random.default_rng(3).integers(0, 256, (30, 40), dtype=np.uint8)
    Image.fromarray(np.dstack([gradient_image(30, 40), alpha])).save(tmp_path / "t.png")
    assert (
        run("deblur", tmp_path / "t.png", "-o", tmp_path / "o.png", "--weights", model_file, "--window", 32).exit_code
        == 0
    )
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png"))[..., 3], alpha)


def test_exif_orientation_and_icc_through_the_cli(tmp_path, model_file):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    stored = gradient_image(40, 60)
    Image.fromarray(stored).save(tmp_path / "p.jpg", exif=exif.tobytes(), icc_profile=icc, quality=95)
    assert (
        run("deblur", tmp_path / "p.jpg", "-o", tmp_path / "o.jpg", "--weights", model_file, "--window", 32).exit_code
        == 0
    )
    with Image.open(tmp_path / "o.jpg") as im:
        assert im.size == (40, 60)
        assert im.info["icc_profile"] == icc
        assert im.getexif().get(0x010F) == "TestCam" and im.getexif().get(0x0112, 1) == 1
    stripped = run(
        "deblur",
        tmp_path / "p.jpg",
        "-o",
        tmp_path / "s.jpg",
        "--weights",
        model_file,
        "--window",
        32,
        "--strip-metadata",
    )
    assert stripped.exit_code == 0
    with Image.open(tmp_path / "s.jpg") as im:
        assert "icc_profile" not in im.info and len(im.getexif()) == 0


def test_bad_inputs_each_give_one_line_and_the_batch_goes_on(tmp_path, model_file):
    src = tmp_path / "in"
    src.mkdir()
    (tmp_path / "empty").mkdir()
    Image.fromarray(gradient_image(30, 30)).save(src / "good.png")
    (src / "zero.png").write_bytes(b"")
    (src / "cut.jpg").write_bytes(truncated_jpeg())
    (src / "noise.png").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)))
    (src / "bomb.png").write_bytes(png_header(100000, 100000))
    missing = tmp_path / "missing.png"
    result = run(
        "deblur", src, tmp_path / "empty", missing, "-o", tmp_path / "out", "--weights", model_file, "--window", 32
    )
    assert result.exit_code == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 6, result.stderr
    for path in [src / n for n in ("zero.png", "cut.jpg", "noise.png", "bomb.png")] + [missing, tmp_path / "empty"]:
        assert sum(f"{path}:" in line for line in failed) == 1, path
    assert (tmp_path / "out" / "good.png").is_file()
    assert "1 deblurred, 0 skipped, 6 failed" in result.stderr


def test_unwritable_output_folder(tmp_path, model_file):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        Image.fromarray(gradient_image(20, 20, i)).save(src / f"{i}.png")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    result = run("deblur", src, "-o", blocker / "out", "--weights", model_file, "--window", 32)
    assert result.exit_code == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2 and all("cannot write" in line for line in failed)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--window", "64", "--shift", "80"], "--shift"),
        (["--window", "8"], "smaller than this model allows"),
        (["--ext", "gif"], "--ext"),
        (["--memory-budget", "lots"], "memory size"),
        (["--blend", "median"], "--blend"),
        (["--sampler", "euler"], "--sampler"),
        (["--quality", "0"], "quality"),
        (["--no-such-flag"], "No such option"),
        (["--scale", "big"], "--scale must be auto or a number"),
        (["--scale", "0.5"], "--scale must be auto or a number from 1 to 16"),
        (["--max-scale", "99"], "--max-scale must be a number from 1 to 16"),
        (["--strength", "-0.5"], "--strength must be a number from 0 to 1"),
        (["--strength", "1.5"], "--strength must be a number from 0 to 1"),
        (["--strength", "half"], "--strength must be a number from 0 to 1, got 'half'"),
        (["--keep-background-blur", "0"], "--keep-background-blur must be a positive radius"),
        (["--keep-background-blur", "big"], "--keep-background-blur must be a radius in pixels"),
    ],
)
def test_bad_flags_exit_2(tmp_path, model_file, extra, message):
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "a.png")
    result = run("deblur", tmp_path / "a.png", "-o", tmp_path / "o.png", "--weights", model_file, *extra)
    assert result.exit_code == 2
    assert message in result.output


def test_save_blur_map_strength_and_kept_background(tmp_path, model_file):
    from swintormer_cli.blur_maps import load_blur_map

    Image.fromarray(gradient_image(48, 64)).save(tmp_path / "a.png")
    result = run("deblur", tmp_path / "a.png", "-o", tmp_path / "out", "--weights", model_file, "--save-blur-map")
    assert result.exit_code == 0, result.output
    radius = load_blur_map(tmp_path / "out" / "a.blur.png")
    assert radius.shape == (48, 64) and np.isfinite(radius).all() and radius.min() >= 0
    assert (tmp_path / "out" / "a.blur-preview.png").is_file() and (tmp_path / "out" / "a.png").is_file()
    # Strength 0 gives the input back, bit for bit; a kept background is said in the set-up line.
    result = run("deblur", tmp_path / "a.png", "-o", tmp_path / "zero.png", "--weights", model_file, "--strength", 0)
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "zero.png")), gradient_image(48, 64))
    assert "strength 0" in result.stderr
    result = run(
        "deblur", tmp_path / "a.png", "-o", tmp_path / "k.png", "--weights", model_file, "--keep-background-blur", 6
    )
    assert result.exit_code == 0 and "background blur over 6 px kept" in result.stderr


def test_torchrun_ranks_split_the_files(tmp_path, model_file):
    jobs = [Job(tmp_path / f"{i}.png", tmp_path / "o" / f"{i}.png") for i in range(5)]
    assert [j.source.name for j in shard(jobs, 1, 2)] == ["1.png", "3.png"]
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        Image.fromarray(gradient_image(20, 20, i)).save(src / f"{i}.png")
    result = run(
        "deblur",
        src,
        "-o",
        tmp_path / "out",
        "--weights",
        model_file,
        "--window",
        32,
        env={"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"},
    )
    assert result.exit_code == 0 and "rank 1/2: 2 of 4 files" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "3.png"]


def test_plan_refuses_to_overwrite_inputs(tmp_path):
    Image.fromarray(gradient_image(8, 8)).save(tmp_path / "a.png")
    plan = plan_jobs([tmp_path / "a.png"], tmp_path, suffix="")
    assert not plan.jobs and "overwrite the input" in str(plan.problems[0])


def test_interrupting_a_batch_leaves_no_partial_file(tmp_path, model_file):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(40):
        Image.fromarray(gradient_image(96, 128, i)).save(src / f"{i:02d}.png")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "swintormer_cli",
            "deblur",
            str(src),
            "-o",
            str(out),
            "--weights",
            str(model_file),
            "--window",
            "32",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that starts the tests in the background (`pytest &`) ignores SIGINT, and the child would inherit
        # that: Ctrl-C is what is tested here, so the child gets the default handling.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out.is_dir() and len(list(out.glob("*.png"))) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    leftovers = [p.name for p in out.iterdir() if not p.name.endswith(".png") or p.name.startswith(".")]
    assert leftovers == []
    written = list(out.glob("*.png"))
    assert 2 <= len(written) < 40
    for path in written:
        assert read_image(path).pixels.shape == (96, 128, 3)


class _FailsOnLargeTiles(torch.nn.Module):
    """Acts like a model that fails on tiles of more than 32x32 pixels (and works on smaller ones)."""

    def __init__(self, model, error):
        super().__init__()
        self.inner, self.config, self.error = model, model.config, error

    def forward(self, x, prior=None):
        if x.shape[-2] * x.shape[-1] > 32 * 32:
            raise self.error
        return self.inner(x, prior)


@pytest.mark.parametrize(
    "error,reason",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory"),
        (RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR\nwhile running a kernel"), "RuntimeError: cuDNN"),
    ],
)
def test_a_failure_inside_one_file_fails_that_file_only(tmp_path, error, reason):
    model, _ = tiny_model()
    pipe = DeblurPipeline(_FailsOnLargeTiles(model, error), window=64, device="cpu")  # tile batch measured
    Image.fromarray(gradient_image(64, 64)).save(tmp_path / "big.png")
    Image.fromarray(gradient_image(24, 24)).save(tmp_path / "small.png")
    jobs = plan_jobs([tmp_path / "big.png", tmp_path / "small.png"], tmp_path / "out").jobs
    big, small = (deblur_file(pipe, job) for job in jobs)
    assert big.status == "failed" and small.status == "done"
    assert big.message.startswith(f"{tmp_path / 'big.png'}: ") and reason in big.message
    assert "\n" not in big.message and big.error is not None
    assert (tmp_path / "out" / "small.png").is_file() and not (tmp_path / "out" / "big.png").exists()


def test_tracebacks_only_with_debug(tmp_path, model_file):
    (tmp_path / "zero.png").write_bytes(b"")
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "good.png")
    for flags, shown in (([], False), (["--debug"], True), (["-v"], True)):
        out = tmp_path / f"out{len(flags)}{shown}"
        result = run("deblur", tmp_path / "zero.png", tmp_path / "good.png", "-o", out, "--weights", model_file, *flags)
        assert result.exit_code == 1, result.output
        assert ("Traceback" in result.stderr) == shown, result.stderr
        assert f"failed: {tmp_path / 'zero.png'}: empty file" in result.stderr


def test_ctrl_c_while_the_model_loads_exits_130(tmp_path, model_file, monkeypatch):
    def interrupted(*_):
        raise KeyboardInterrupt  # what Ctrl-C raises wherever the program is at the time

    monkeypatch.setattr(sys.modules["swintormer_cli.cli.deblur"], "load_bundle", interrupted)
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "a.png")
    result = run("deblur", tmp_path / "a.png", "-o", tmp_path / "out", "--weights", model_file)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "env,name",
    [
        ({"SWINTORMER_MAX_PIXELS": "abc"}, "SWINTORMER_MAX_PIXELS"),
        ({"SWINTORMER_MAX_PIXELS": "-5"}, "SWINTORMER_MAX_PIXELS"),
        ({"SWINTORMER_MAX_PIXELS": "1.5"}, "SWINTORMER_MAX_PIXELS"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK"),
        ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "-1"}, "LOCAL_RANK"),
        ({"LOCAL_WORLD_SIZE": "0"}, "LOCAL_WORLD_SIZE"),
    ],
)
def test_malformed_environment_is_a_usage_error_before_any_work(tmp_path, model_file, env, name):
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "a.png")
    result = run("deblur", tmp_path / "a.png", "-o", tmp_path / "out", "--weights", model_file, env=env)
    assert result.exit_code == 2, result.output
    assert name in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists() and "model " not in result.stderr


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--eta", "nan"], "--eta"),
        (["--eta", "inf"], "--eta"),
        (["--memory-budget", "0.5"], "memory"),
        (["--scale", "nan"], "--scale"),
    ],
)
def test_non_finite_and_degenerate_flags_exit_2(tmp_path, model_file, extra, message):
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "a.png")
    result = run("deblur", tmp_path / "a.png", "-o", tmp_path / "o.png", "--weights", model_file, *extra)
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize("suffix", ["/../../escaped", "_x/../../escaped", "\0"])
def test_suffix_cannot_move_outputs_out_of_their_folder(tmp_path, model_file, suffix):
    src = tmp_path / "in" / "deep"
    src.mkdir(parents=True)
    Image.fromarray(gradient_image(20, 20)).save(src / "a.png")
    result = run("deblur", src / "a.png", "--suffix", suffix, "--weights", model_file)
    assert result.exit_code == 2 and "--suffix" in result.stderr, result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "deep", "in", model_file.name]


def test_a_batch_removes_what_a_killed_run_left_half_written(tmp_path, model_file):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(gradient_image(20, 20)).save(src / name)
    Image.fromarray(gradient_image(20, 20)).save(out / "b.png")  # done before the kill
    (out / ".a.png.q8w7e6_x.part").write_bytes(b"\x89PNG half")  # being written when SIGKILL came
    (out / ".b.png.z1x2c3ab.part").write_bytes(b"\x89PNG half")  # a second run killed while overwriting
    result = run("deblur", src, "-o", out, "--weights", model_file)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert "1 deblurred, 1 skipped, 0 failed" in result.stderr
    assert result.stderr.count("partial file") == 2


def _animated_gif(path, frames=3):
    images = [Image.fromarray(gradient_image(20, 24, i)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


def test_a_folder_scan_names_or_counts_everything_it_does_not_deblur(tmp_path, model_file):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(gradient_image(20, 20)).save(src / "good.png")
    _animated_gif(src / "anim.gif")
    (src / "notes.txt").write_text("not an image")
    Image.fromarray(gradient_image(20, 20)).save(src / ".hidden.png")
    Image.fromarray(gradient_image(20, 20)).save(src / "sub" / "deeper.png")
    (src / "broken.png").symlink_to(tmp_path / "gone.png")
    (src / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    result = run("deblur", src, "-o", out, "--weights", model_file)
    assert result.exit_code == 1, result.output
    assert sorted(p.name for p in out.iterdir()) == ["anim.png", "good.png"]
    assert "only the first of its 3 frames" in result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2, result.stderr
    assert any(f"{src / 'broken.png'}: broken symbolic link" in line for line in failed)
    assert any(f"{src / 'photo.heic'}:" in line and "format" in line for line in failed)
    assert "2 deblurred, 0 skipped, 2 failed, 3 ignored (1 hidden, 1 not an image, 1 subfolder" in result.stderr
    # Given by name, the same files give the same result.
    by_name = run("deblur", src / "anim.gif", src / "broken.png", "-o", tmp_path / "o2", "--weights", model_file)
    assert by_name.exit_code == 1 and "only the first of its 3 frames" in by_name.stderr
    assert f"{src / 'broken.png'}: broken symbolic link" in by_name.stderr


def test_a_dual_pixel_model_takes_its_right_views_with_right(tmp_path, plain_model_file):
    from swintormer_cli.checkpoint import save_model

    model, _ = tiny_model(in_views=2)
    dual = save_model(tmp_path / "dual.safetensors", model, None, {"window": 32})
    left, right = tmp_path / "L", tmp_path / "R"
    for folder, shift in ((left, 1), (right, -1)):
        folder.mkdir()
        for i in range(2):
            Image.fromarray(np.roll(gradient_image(30, 40, seed=i), shift, axis=1)).save(folder / f"{i}.png")
    result = run("deblur", left, "-o", tmp_path / "out", "--weights", dual, "--right", right)
    assert result.exit_code == 0, result.output
    out = read_image(tmp_path / "out" / "0.png").pixels
    pipe = DeblurPipeline(model, device="cpu", window=32)
    pair = np.concatenate([read_image(left / "0.png").to_float(), read_image(right / "0.png").to_float()], axis=2)
    assert np.array_equal(out, np.round(pipe(pair) * 255).astype(np.uint8))  # the pair, left view first
    # Without the right views each file fails with one line saying what to give; a right view of another size too.
    result = run("deblur", left / "0.png", "-o", tmp_path / "o.png", "--weights", dual)
    assert result.exit_code == 1 and "give the right views with --right" in result.output
    Image.fromarray(gradient_image(20, 40)).save(right / "0.png")
    result = run("deblur", left / "0.png", "-o", tmp_path / "o.png", "--weights", dual, "--right", right / "0.png")
    assert result.exit_code == 1 and "the right view is 40x20" in result.output
    # --right with a single-image model, or one right file for several inputs, is bad usage.
    assert run("deblur", left, "-o", tmp_path / "x", "--weights", plain_model_file, "--right", right).exit_code == 2
    assert run("deblur", left, "-o", tmp_path / "x", "--weights", dual, "--right", right / "1.png").exit_code == 2


def test_the_scale_flag_fixes_the_scale_and_the_set_up_line_says_which(tmp_path, model_file):
    Image.fromarray(gradient_image(160, 192)).save(tmp_path / "a.png")
    fixed = run("deblur", tmp_path / "a.png", "-o", tmp_path / "two.png", "--weights", model_file, "--scale", "2")
    assert fixed.exit_code == 0, fixed.output
    assert "scale 2" in fixed.output
    pipe = DeblurPipeline.from_pretrained(weights=model_file, device="cpu", scale=2)
    expected = pipe(np.asarray(Image.open(tmp_path / "a.png")))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "two.png")), expected)
    auto = run("deblur", tmp_path / "a.png", "-o", tmp_path / "auto.png", "--weights", model_file)
    assert auto.exit_code == 0, auto.output
    # A model file of its own is paired with the shipped blur estimator.
    assert "scale auto" in auto.output
