import json
import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity
from typer.testing import CliRunner

from swintormer_cli.cli import app
from swintormer_cli.evaluation.datasets import dpdd_set, load_pixels, pairs_set
from swintormer_cli.evaluation.metrics import MAX_PSNR, gain_compensated_psnr, mae, psnr, ssim
from swintormer_cli.evaluation.runner import sweep

from .helpers import gradient_image


def test_psnr_of_a_known_mse():
    a = np.zeros((10, 10, 3))
    b = np.full((10, 10, 3), 0.1)  # MSE 0.01 -> 20 dB
    assert psnr(a, b) == pytest.approx(20.0)
    assert mae(a, b) == pytest.approx(0.1)


def test_identical_images_give_the_defined_maximum():
    a = np.random.default_rng(0).random((8, 8, 3))
    assert psnr(a, a) == MAX_PSNR == 100.0
    assert ssim(a, a) == pytest.approx(1.0)


def test_ssim_equals_scikit_image():
    rng = np.random.default_rng(1)
    a = rng.random((40, 50, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    assert ssim(a, b) == structural_similarity(
        a.astype(np.float64), b.astype(np.float64), data_range=1.0, channel_axis=-1
    )


def test_gain_compensation_removes_an_exposure_difference():
    target = np.random.default_rng(2).random((20, 20, 3)) * 0.8
    darker = target * np.array([0.92, 0.95, 1.0])
    assert gain_compensated_psnr(darker, target) > psnr(darker, target) + 10
    assert math.isclose(gain_compensated_psnr(target, target), MAX_PSNR)


def test_masked_metrics_score_those_pixels_alone():
    rng = np.random.default_rng(3)
    target = rng.random((30, 40, 3))
    output = target.copy()
    output[:, 20:] = np.clip(output[:, 20:] + 0.1, 0, 1)  # the right half wrong
    left = np.zeros((30, 40), dtype=bool)
    left[:, :20] = True
    assert psnr(output, target, left) == MAX_PSNR and mae(output, target, left) == 0
    assert psnr(output, target, ~left) == pytest.approx(psnr(output[:, 20:], target[:, 20:]))
    assert ssim(output, target, left) > ssim(output, target) > ssim(output, target, ~left)
    darker = target * 0.9
    assert gain_compensated_psnr(darker, target, left) > 60  # the gain fitted on the masked pixels
    assert math.isnan(psnr(output, target, np.zeros_like(left)))
    with pytest.raises(ValueError, match="mask"):
        psnr(output, target, left[:10])


def test_size_mismatch_names_the_files(tmp_path, plain_model_file):
    import cv2

    for folder, size in (("source", (20, 30)), ("target", (20, 32))):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "a.png"), gradient_image(*size))
    result = CliRunner().invoke(app, ["eval", "--data-root", str(tmp_path), "--weights", str(plain_model_file)])
    assert result.exit_code == 1
    assert str(tmp_path / "source" / "a.png") in result.output and str(tmp_path / "target" / "a.png") in result.output


def _write(path, img):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[..., ::-1])


def _dpdd_test_tree(root, layout, labels, n=4):
    if layout == "official":
        dirs = {
            "C": root / "test_c" / "source",
            "T": root / "test_c" / "target",
            "L": root / "test_l" / "source",
            "R": root / "test_r" / "source",
        }
        label_dir = root
    else:
        base = root / "test" / "DPDD"
        dirs = {"C": base / "inputC", "T": base / "target", "L": base / "inputL", "R": base / "inputR"}
        label_dir = base
    for i in range(n):
        sharp = gradient_image(32, 40, seed=i, dtype=np.uint16)
        blurry = (sharp.astype(np.float64) * 0.9 + 3000).clip(0, 65535).astype(np.uint16)
        _write(dirs["T"] / f"img{i + 1}.png", sharp)
        for k in "CLR":
            _write(dirs[k] / f"img{i + 1}.png", blurry)
    if labels:
        np.save(label_dir / "indoor_labels.npy", np.array([1, 3]))
        np.save(label_dir / "outdoor_labels.npy", np.array([2, 4]))


@pytest.mark.parametrize("layout", ["official", "restormer"])
@pytest.mark.parametrize("views", ["single", "dual"])
@pytest.mark.parametrize("labels", [True, False])
def test_dpdd_trees_in_both_layouts(tmp_path, layout, views, labels):
    _dpdd_test_tree(tmp_path, layout, labels)
    es = dpdd_set(tmp_path, views)
    assert len(es.items) == 4 and es.views == (1 if views == "single" else 2)
    assert es.bits == (8 if views == "single" else 16)
    assert (es.scenes is not None) == labels
    if labels:
        assert es.scenes == {"indoor": [0, 2], "outdoor": [1, 3]}
    else:
        assert "only the combined average" in es.note
    # Single view reads 16-bit files the way OpenCV's default read does (the low byte dropped).
    px = load_pixels(es.items[0].target, es.bits)
    assert px.dtype == np.float32 and (len(np.unique(px)) <= 256) == (views == "single")


def test_eval_cli_on_dpdd_writes_json_and_csv(tmp_path, plain_model_file):
    root = tmp_path / "dpdd"
    _dpdd_test_tree(root, "restormer", labels=True)
    report = tmp_path / "r.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--dataset",
            "dpdd",
            "--data-root",
            str(root),
            "--weights",
            str(plain_model_file),
            "--window",
            "32",
            "--json",
            str(report),
            "--csv",
            str(tmp_path / "r.csv"),
            "--save-images",
            str(tmp_path / "imgs"),
            "--no-lpips",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert set(data) == {"dataset", "model", "run", "notes", "rows"}
    assert data["rows"][0]["kind"] == "input" and data["rows"][1]["kind"] == "model"
    assert set(data["rows"][1]["averages"]) == {"all", "indoor", "outdoor"}
    assert len(data["rows"][1]["images"]) == 4 and "psnr" in data["rows"][1]["gain"]
    for key in ("name", "sha256", "prior", "device", "precision", "seed"):
        assert key in data["model"]
    assert data["rows"][1]["setting"]["window"] == 32
    assert {"torch", "diffusers", "swintormer"} <= set(data["run"]["versions"])
    assert data["rows"][0]["averages"]["all"]["lpips"] is None
    assert len(list((tmp_path / "imgs").glob("*.png"))) == 4
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0].startswith("row,kind,window,shift,blend,prior_steps,image,psnr")
    assert any("mean:indoor" in r for r in rows)


def test_eval_pairs_sweep_with_references(tmp_path, model_file):
    root = tmp_path / "pairs"
    for i in range(2):
        sharp = gradient_image(40, 48, seed=i)
        _write(root / "target" / f"{i}.png", sharp)
        _write(root / "source" / f"{i}.png", (sharp * 0.9).astype(np.uint8))
        _write(root / "other" / f"{i}.png", sharp // 2)
    assert list(pairs_set(root).references) == ["other"]
    report = tmp_path / "r.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--data-root",
            str(root),
            "--weights",
            str(model_file),
            "--window",
            "32,64",
            "--shift",
            "24,48",
            "--prior-steps",
            "2,3",
            "--blend",
            "average,feather",
            "--gain-compensate",
            "--json",
            str(report),
            "--no-lpips",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    kinds = [r["kind"] for r in data["rows"]]
    # 32/24, 64/24, 64/48 (32/48 left out) x 2 blends x 2 step counts.
    assert kinds.count("model") == 12 and kinds[0] == "input" and kinds[-1] == "reference"
    assert data["rows"][0]["averages"]["all"]["gc_psnr"] is not None
    assert "left out shift 48 > window 32" in result.output


def test_sweep_grid():
    settings, skipped = sweep([256, 512], [220, 384], ["average"], [None])
    assert [(s.window, s.shift) for s in settings] == [(256, 220), (512, 220), (512, 384)]
    assert skipped == ["shift 384 > window 256"]


def test_eval_scores_the_in_focus_region_with_a_kept_background(tmp_path, model_file):
    root = tmp_path / "pairs"
    sharp = gradient_image(48, 64)
    _write(root / "target" / "0.png", sharp)
    _write(root / "source" / "0.png", (sharp * 0.9).astype(np.uint8))
    report = tmp_path / "r.json"
    args = ["eval", "--data-root", str(root), "--weights", str(model_file), "--no-lpips", "--json", str(report)]
    result = CliRunner().invoke(
        app, [*args, "--score-in-focus", "100", "--keep-background-blur", "3", "--strength", "0.5"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["run"]["region"] == "the pixels whose estimated blur is at most 100 px"
    assert data["rows"][0]["images"][0]["scored_fraction"] == 1.0
    assert data["model"]["strength"] == 0.5 and data["model"]["keep_background_blur"] == 3.0
    assert "scored only the pixels whose estimated blur is at most 100 px: 100.0 %" in result.output
    for extra, message in [
        (["--score-in-focus", "0"], "--score-in-focus must be a positive radius"),
        (["--score-in-focus", "x"], "--score-in-focus must be a radius in pixels"),
        (["--strength", "2"], "--strength must be a number from 0 to 1"),
    ]:
        bad = CliRunner().invoke(app, [*args, *extra])
        assert bad.exit_code == 2 and message in bad.output, bad.output


def test_eval_makes_each_images_blur_map_once_for_every_setting(tmp_path, model_file, monkeypatch):
    """--score-in-focus's map of an image is the one its restores use, for each setting of a sweep."""
    import swintormer_cli.inference.pipeline as pipeline_module

    made = []
    real = pipeline_module.blur_map

    def counted(estimator, image, **kwargs):
        made.append(tuple(image.shape))
        return real(estimator, image, **kwargs)

    monkeypatch.setattr(pipeline_module, "blur_map", counted)
    root = tmp_path / "pairs"
    for name, (h, w) in {"a": (72, 80), "b": (80, 72)}.items():
        sharp = gradient_image(h, w)
        _write(root / "target" / f"{name}.png", sharp)
        _write(root / "source" / f"{name}.png", (sharp * 0.9).astype(np.uint8))
    report = tmp_path / "r.json"
    args = ["eval", "--data-root", str(root), "--weights", str(model_file), "--no-lpips", "--json", str(report)]
    result = CliRunner().invoke(app, [*args, "--window", "48,64", "--score-in-focus", "4", "--max-scale", "2"])
    assert result.exit_code == 0, result.output
    assert made == [(3, 72, 80), (3, 80, 72)]
    rows = json.loads(report.read_text())["rows"]
    assert [r["kind"] for r in rows].count("model") == 2
    assert all(len(r["images"]) == 2 for r in rows)


def test_eval_quiet_and_bad_settings_name_their_flag(tmp_path, model_file):
    root = tmp_path / "pairs"
    sharp = gradient_image(40, 48)
    _write(root / "target" / "0.png", sharp)
    _write(root / "source" / "0.png", (sharp * 0.9).astype(np.uint8))
    args = ["eval", "--data-root", str(root), "--weights", str(model_file), "--no-lpips", "--prior-steps", "2"]
    quiet = CliRunner().invoke(app, [*args, "--window", "32", "--shift", "24,48", "-q"])
    assert quiet.exit_code == 0, quiet.output
    assert "left out" not in quiet.output and "PSNR" in quiet.output.upper()
    for extra, flag in [
        (["--blend", "median"], "--blend"),
        (["--window", "8"], "--window"),
        (["--eta", "-1"], "--eta"),
    ]:
        bad = CliRunner().invoke(app, [*args, *extra])
        assert bad.exit_code == 2 and flag in bad.output, bad.output
