"""Blur of any size: the blur estimator, its pyramid, the choice of scales and the multi-scale restore."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from swintormer_cli.inference import DeblurPipeline, InferenceSettings, SettingError
from swintormer_cli.inference import scales as scales_module
from swintormer_cli.inference.scales import SCALE_LADDER, blur_map, resize, scale_weights, scaled_size
from swintormer_cli.models.blur_estimator import (
    BlurEstimator,
    BlurEstimatorConfig,
    is_estimator_file,
    load_estimator,
    save_estimator,
)

from .helpers import gradient_image, tiny_model


class ConstantEstimator(BlurEstimator):
    """Answers the same radius (in the pixels it is shown) everywhere, whatever the image."""

    def __init__(self, radius: float, max_radius: float = 16.0):
        super().__init__(BlurEstimatorConfig(width=2, dilations=(1,), max_radius=max_radius, bands=(), norm=False))
        self.value = radius
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        h, w = math.ceil(x.shape[-2] / 4), math.ceil(x.shape[-1] / 4)
        return torch.full((x.shape[0], 1, h, w), math.log1p(self.value))


class WidthEstimator(BlurEstimator):
    """Answers a radius that scales with the image: ``radius_px`` of the full image, shown at any level, reads
    as ``radius_px * (level width / full width)`` (capped at max_radius): what a perfect estimator would say."""

    def __init__(self, radius_px: float, full_width: int, max_radius: float = 16.0):
        super().__init__(BlurEstimatorConfig(width=2, dilations=(1,), max_radius=max_radius, bands=(), norm=False))
        self.radius_px, self.full_width = radius_px, full_width

    def forward(self, x):
        seen = min(self.config.max_radius, self.radius_px * x.shape[-1] / self.full_width)
        h, w = math.ceil(x.shape[-2] / 4), math.ceil(x.shape[-1] / 4)
        return torch.full((x.shape[0], 1, h, w), math.log1p(seen))


def image(h=64, w=96, seed=0) -> torch.Tensor:
    return torch.from_numpy(gradient_image(h, w, seed=seed).astype(np.float32) / 255).permute(2, 0, 1)


# -- choosing scales ---------------------------------------------------------------------------------------
def test_scale_weights_sum_to_one_and_follow_the_radius():
    radius = torch.tensor([[0.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 500.0]])
    plan = scale_weights(radius, scale_radius=5.0, max_scale=8.0)
    total = sum(w for _, w in plan)
    torch.testing.assert_close(total, torch.ones_like(total))
    weights = {s: w[0] for s, w in plan}
    # Radii at or under 5 px stay at full size; 10 px is exactly scale 2, 15 exactly 3, 30 exactly 6.
    assert weights[1.0][:3].tolist() == [1.0, 1.0, 1.0]
    assert weights[2.0][4] == pytest.approx(1.0) and weights[3.0][5] == pytest.approx(1.0)
    assert weights[6.0][6] == pytest.approx(1.0)
    # 7.5 px wants scale 1.5: a rung of its own.
    assert weights[1.5][3] == pytest.approx(1.0)
    # Far past the largest scale: the largest scale.
    assert weights[8.0][7] == pytest.approx(1.0)
    # Between rungs, the two neighbours share it, the nearer one (in log-scale) more.
    plan = dict(scale_weights(torch.tensor([[12.0]]), 5.0, 8.0))
    assert set(plan) == {2.0, 3.0}
    assert plan[2.0].item() + plan[3.0].item() == pytest.approx(1.0)
    assert plan[3.0].item() == pytest.approx(math.log(2.4 / 2) / math.log(1.5))


def test_scale_weights_use_only_the_rungs_a_map_needs_and_respect_max_scale():
    assert [s for s, _ in scale_weights(torch.full((4, 4), 2.0), 5.0, 8.0)] == [1.0]
    assert [s for s, _ in scale_weights(torch.full((4, 4), 100.0), 5.0, 4.0)] == [4.0]
    # A max scale between rungs is a rung itself.
    assert [s for s, _ in scale_weights(torch.full((4, 4), 100.0), 5.0, 5.0)] == [5.0]
    assert SCALE_LADDER[0] == 1.0 and list(SCALE_LADDER) == sorted(SCALE_LADDER)


def test_resize_round_trips_sizes_and_keeps_the_range():
    x = image(50, 70)
    h, w = scaled_size(50, 70, 3.0)
    assert (h, w) == (17, 23)
    small = resize(x, h, w)
    assert small.shape == (3, 17, 23) and small.min() >= 0 and small.max() <= 1
    assert resize(small, 50, 70).shape == (3, 50, 70)
    assert resize(x, 50, 70) is x


# -- the pyramid ---------------------------------------------------------------------------------------------
def test_blur_map_keeps_the_finest_level_inside_its_range():
    # Every level answers 3 px of its own: the finest level asked (half size) is inside its range, so the map
    # says 3 px at half size, 6 px of the full image.
    radius = blur_map(ConstantEstimator(3.0), image(128, 160))
    assert radius.shape == (128, 160)
    torch.testing.assert_close(radius, torch.full_like(radius, 6.0))
    radius = blur_map(ConstantEstimator(3.0), image(128, 160), first_level=0)
    torch.testing.assert_close(radius, torch.full_like(radius, 3.0))


def test_blur_map_hands_large_blur_to_coarser_levels():
    # A perfect estimator shown a 40 px blur of a 256 px wide image: at half size it reads 16 (its top, out of
    # its range), at 1/4 it reads 10 (still past the handover), at 1/8 it reads 5: that level's answer wins.
    full_w = 256
    radius = blur_map(WidthEstimator(40.0, full_w), image(256, full_w))
    torch.testing.assert_close(radius, torch.full_like(radius, 40.0))
    # And a small blur is read where it is seen best, at the finest level.
    radius = blur_map(WidthEstimator(4.0, full_w), image(256, full_w))
    torch.testing.assert_close(radius, torch.full_like(radius, 4.0))


def test_blur_map_in_bands_equals_one_pass(monkeypatch):
    torch.manual_seed(0)
    estimator = BlurEstimator(BlurEstimatorConfig(width=8, dilations=(1, 2)))
    x = image(300, 120, seed=3)
    whole = blur_map(estimator, x, first_level=0)
    monkeypatch.setattr(scales_module, "BAND", 64)
    banded = blur_map(estimator, x, first_level=0)
    # The bands see 96 rows of context: more than this small network's receptive field, so nothing changes.
    torch.testing.assert_close(banded, whole, atol=1e-4, rtol=1e-4)


# -- the pipeline ------------------------------------------------------------------------------------------
def test_without_an_estimator_or_with_scale_1_the_pipeline_is_unchanged():
    model, _ = tiny_model()
    x = image()
    plain = DeblurPipeline(model, window=32, device="cpu", precision="fp32").restore(x)
    estimator = ConstantEstimator(50.0)
    fixed = DeblurPipeline(model, window=32, device="cpu", precision="fp32", estimator=estimator, scale=1)
    assert torch.equal(fixed.restore(x), plain)
    assert estimator.calls == 0 and fixed.scale_mode == "1"
    small = DeblurPipeline(model, window=32, device="cpu", precision="fp32", estimator=ConstantEstimator(1.0))
    assert small.scale_mode == "auto"
    assert torch.equal(small.restore(x), plain)  # 2 px of blur: full size only


def test_a_large_blur_is_restored_at_its_scale():
    model, _ = tiny_model()
    x = image(256, 320)
    # 12 px at half size is 24 px of the full image: scale 24 / 6 = 4 at scale radius 6.
    pipe = DeblurPipeline(
        model, window=32, device="cpu", precision="fp32", estimator=ConstantEstimator(12.0), scale_radius=6.0
    )
    assert [s for s, _ in pipe.scales_for(x)] == [4.0]
    plain = DeblurPipeline(model, window=32, device="cpu", precision="fp32")
    by_hand = resize(plain.restore(resize(x, 64, 80)), 256, 320)
    torch.testing.assert_close(pipe.restore(x), by_hand)
    # The same with the scale fixed by the user, and no estimator at all.
    fixed = DeblurPipeline(model, window=32, device="cpu", precision="fp32", scale=4)
    torch.testing.assert_close(fixed.restore(x), by_hand)


def test_no_pass_shrinks_a_photo_below_the_smallest_side():
    model, _ = tiny_model()
    x = image(96, 128)  # 96 / 64: at most scale 1.5
    fixed = DeblurPipeline(model, window=32, device="cpu", precision="fp32", scale=8)
    assert fixed.scales_for(x) == [(1.5, None)]
    auto = DeblurPipeline(model, window=32, device="cpu", precision="fp32", estimator=ConstantEstimator(50.0))
    assert [s for s, _ in auto.scales_for(x)] == [1.5]
    tiny = image(40, 48)
    estimator = ConstantEstimator(50.0)
    auto = DeblurPipeline(model, window=32, device="cpu", precision="fp32", estimator=estimator)
    assert auto.scales_for(tiny) == [(1.0, None)] and estimator.calls == 0  # not even a map


def test_mixed_blur_blends_the_scales_and_counts_progress_over_all_passes():
    model, _ = tiny_model()
    x = image(256, 384)
    # Left half sharp, right half blurred 20 px: scales 1 and 4 (and the blend between where the map ramps).
    radius = torch.zeros(256, 384)
    radius[:, 192:] = 20.0
    pipe = DeblurPipeline(model, window=32, device="cpu", precision="fp32", estimator=ConstantEstimator(0.0))
    plan = pipe.scales_for(x, radius)
    assert [s for s, _ in plan] == [1.0, 4.0]
    seen = []
    out = pipe.restore(x, progress=lambda done, total: seen.append((done, total)), radius=radius)
    assert seen[-1][0] == seen[-1][1] and all(t == seen[-1][1] for _, t in seen)
    # The full-size pass skips the tiles of the blurred half (and the coarse pass those of the sharp half).
    assert seen[-1][1] < len(pipe.grid(256, 384)) + len(pipe.grid(64, 96))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    full = DeblurPipeline(model, window=32, device="cpu", precision="fp32").restore(x)
    coarse = DeblurPipeline(model, window=32, device="cpu", precision="fp32", scale=4).restore(x)
    torch.testing.assert_close(out[:, :, :192], full[:, :, :192])
    torch.testing.assert_close(out[:, :, 192:], coarse[:, :, 192:])


def test_the_array_interface_takes_a_blur_map():
    model, _ = tiny_model()
    pipe = DeblurPipeline(model, window=32, device="cpu", precision="fp32", estimator=ConstantEstimator(0.0))
    pixels = gradient_image(40, 48)
    radius = torch.full((40, 48), 30.0)
    out = pipe(pixels, radius=radius)
    assert out.dtype == np.uint8 and out.shape == pixels.shape
    assert pipe.describe()["scale"] == "auto"


def test_the_blur_map_takes_an_array_as_the_pipeline_does():
    torch.manual_seed(0)
    estimator = BlurEstimator(BlurEstimatorConfig(width=8, dilations=(1, 2)))
    pipe = DeblurPipeline(tiny_model()[0], window=32, device="cpu", precision="fp32", estimator=estimator)
    pixels = gradient_image(40, 48)  # uint8, HxWx3
    from_tensor = pipe.blur_map(torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1))
    torch.testing.assert_close(pipe.blur_map(pixels), from_tensor)
    torch.testing.assert_close(pipe.blur_map(pixels.astype(np.float32) / 255), from_tensor)
    with pytest.raises(ValueError, match="HxWxC"):
        pipe.blur_map(pixels[..., 0])


@pytest.mark.parametrize(
    "field, value, match",
    [("scale", 0.5, "scale must be auto or a number from 1 to 16"), ("scale", 17.0, "from 1 to 16"),
     ("scale", float("nan"), "from 1 to 16"), ("max_scale", 0.0, "max scale must be"),
     ("scale_radius", -1.0, "scale radius must be a positive number")],
)  # fmt: skip
def test_bad_scale_settings_are_named(field, value, match):
    with pytest.raises(SettingError, match=match) as info:
        InferenceSettings(**{field: value}).resolve()
    assert info.value.name == field


def test_the_model_names_its_scale_radius_and_the_user_overrides_it():
    from swintormer_cli.inference.settings import DEFAULT_SCALE_RADIUS, ModelDefaults

    assert InferenceSettings().resolve().scale_radius == DEFAULT_SCALE_RADIUS
    assert InferenceSettings().resolve(model=ModelDefaults(scale_radius=4.0)).scale_radius == 4.0
    assert InferenceSettings(scale_radius=7.0).resolve(model=ModelDefaults(scale_radius=4.0)).scale_radius == 7.0


# -- the estimator's file ------------------------------------------------------------------------------------
def test_the_estimator_file_round_trips_and_a_broken_one_is_named(tmp_path):
    torch.manual_seed(0)
    est = BlurEstimator(BlurEstimatorConfig(width=4, dilations=(1, 2), max_radius=12.0))
    path = tmp_path / "est.safetensors"
    save_estimator(path, est, {"steps": 3})
    again = load_estimator(path)
    assert again.config == est.config and again.record == {"steps": 3}
    x = image(32, 40)[None]
    assert torch.equal(again(x), est.eval()(x))
    assert is_estimator_file(path)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:100])
    assert not is_estimator_file(broken)
    with pytest.raises(ValueError, match=r"broken\.safetensors: cannot load a blur estimator"):
        load_estimator(broken)
    model_file = tmp_path / "model.safetensors"
    from swintormer_cli.checkpoint import save_model

    save_model(model_file, tiny_model()[0], None, {})
    with pytest.raises(ValueError, match="not a blur estimator file"):
        load_estimator(model_file)


def test_the_registry_pairs_a_model_with_its_estimator(tmp_path, monkeypatch):
    from swintormer_cli.checkpoint import save_model
    from swintormer_cli.weights import (
        Registry,
        RegistryEntry,
        WeightsError,
        resolve_estimator,
        resolve_model,
        sha256_of,
    )

    save_model(tmp_path / "m.safetensors", tiny_model()[0], None, {"window": 32})
    save_estimator(tmp_path / "e.safetensors", BlurEstimator(BlurEstimatorConfig(width=4, dilations=(1,))))
    registry = Registry(
        "m",
        {
            "m": RegistryEntry("m", "m.safetensors", sha256_of(tmp_path / "m.safetensors"), estimator="e"),
            "e": RegistryEntry("e", "e.safetensors", sha256_of(tmp_path / "e.safetensors"), kind="blur-estimator"),
        },
        tmp_path,
    )
    registry.save()
    data = json.loads((tmp_path / "registry.json").read_text())
    assert data["models"]["e"]["kind"] == "blur-estimator" and "kind" not in data["models"]["m"]
    monkeypatch.setattr("swintormer_cli.weights.weights_dir", lambda: tmp_path)
    monkeypatch.setenv("SWINTORMER_HOME", str(tmp_path / "home"))
    bundle = resolve_model("m").load()
    assert isinstance(bundle.estimator, BlurEstimator)
    assert DeblurPipeline.from_bundle(bundle, device="cpu").scale_mode == "auto"
    with pytest.raises(WeightsError, match="'e' is a blur estimator, not a deblurring model"):
        resolve_model("e")
    assert resolve_estimator("nothing", required=False) is None
    with pytest.raises(WeightsError, match="blur estimator 'nothing' is not registered"):
        resolve_estimator("nothing")
    # A registered estimator whose file was changed is refused, never silently skipped.
    (tmp_path / "e.safetensors").write_bytes((tmp_path / "e.safetensors").read_bytes() + b" ")
    with pytest.raises(WeightsError, match="does not match the registry"):
        resolve_model("m").load()


# -- training ------------------------------------------------------------------------------------------------
def _photos(folder, n=3):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(gradient_image(96, 112, seed=i)).save(folder / f"p{i}.png")
    return folder


def test_estimator_training_resumes_to_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    from swintormer_cli.training.blur_estimator import EstimatorTrainConfig, train_estimator

    photos = _photos(tmp_path / "photos")

    def config(out, steps):
        return EstimatorTrainConfig(
            data=[str(photos)],
            output_dir=str(out),
            estimator=BlurEstimatorConfig(width=4, dilations=(1,)),
            steps=steps,
            batch_size=2,
            crop_size=32,
            max_radius=(0.0, 6.0),
            warmup=1,
            checkpoint_every=2,
            log_every=1,
        )

    straight = train_estimator(config(tmp_path / "a", 4))
    train_estimator(config(tmp_path / "b", 2))
    resumed = train_estimator(config(tmp_path / "b", 4), resume="auto")
    a = load_file(straight / "checkpoints" / "last" / "estimator.safetensors")
    b = load_file(resumed / "checkpoints" / "last" / "estimator.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = [json.loads(x) for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4] and all(math.isfinite(r["loss"]) for r in lines)


def test_the_training_target_is_the_occluders_radius_where_it_stands():
    from swintormer_cli.data.degradation import DegradedImages
    from swintormer_cli.training.blur_estimator import target_radius

    radius = torch.full((1, 1, 8, 8), -4.0)
    foreground = torch.zeros(1, 1, 8, 8)
    foreground[..., :4, :] = 1
    batch = DegradedImages(
        blurry=torch.zeros(1, 3, 8, 8), sharp=torch.zeros(1, 3, 8, 8), radius=radius, psfs=torch.zeros(1, 3, 3, 3),
        foreground=foreground, foreground_radius=torch.tensor([7.0]),
    )  # fmt: skip
    target = target_radius(batch, margin=1)
    assert target.shape == (1, 1, 6, 6)
    assert target[0, 0, :3].unique().tolist() == [7.0] and target[0, 0, 3:].unique().tolist() == [4.0]


def test_an_estimator_run_exports_into_a_registry_with_its_kind(tmp_path):
    from typer.testing import CliRunner

    from swintormer_cli.cli import app
    from swintormer_cli.export import is_estimator_run
    from swintormer_cli.training.blur_estimator import EstimatorTrainConfig, train_estimator
    from swintormer_cli.weights import Registry, resolve_estimator

    run = train_estimator(
        EstimatorTrainConfig(
            data=[str(_photos(tmp_path / "photos"))],
            output_dir=str(tmp_path / "run"),
            estimator=BlurEstimatorConfig(width=4, dilations=(1,)),
            steps=2,
            batch_size=2,
            crop_size=32,
            max_radius=(0.0, 6.0),
            warmup=1,
        ),
        config_file="est.yaml",
    )
    assert is_estimator_run(run) and not is_estimator_run(tmp_path / "photos")
    folder = tmp_path / "weights"
    result = CliRunner().invoke(app, ["weights", "export", str(run), "my-est", "--folder", str(folder)])
    assert result.exit_code == 0, result.output
    assert "exported blur estimator my-est" in result.output
    entry = Registry.load(folder).models["my-est"]
    assert entry.kind == "blur-estimator" and entry.recipe == "est.yaml"
    assert "swintormer estimator train --config est.yaml" in (folder / "my-est.md").read_text()
    assert resolve_estimator("my-est", Registry.load(folder)).record["steps"] == 2
