"""How much of the restoration applies where (inference/strength.py), in the pipeline and with the shipped model."""

import math

import numpy as np
import pytest
import torch

from swintormer_cli.data.psf import PSFShape, fft_convolve, kernel_size, render_psf
from swintormer_cli.evaluation.metrics import psnr
from swintormer_cli.inference import DeblurPipeline, SettingError
from swintormer_cli.inference.strength import (
    KEEP_TRANSITION,
    SIGMAS,
    apply_strength,
    low_pass,
    restore_weight,
    varying_low_pass,
)
from swintormer_cli.models.blur_estimator import gaussian_blur
from swintormer_cli.weights import resolve_model

from .helpers import tiny_model


def texture(h: int, w: int, seed: int) -> torch.Tensor:
    """(3, h, w) in [0, 1]: edges and detail at many scales (smoothed noise of several widths, and stripes)."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(1, 3, h, w)
    for sigma, amount in ((0.7, 0.25), (2.0, 0.35), (6.0, 0.5)):
        noise = gaussian_blur(torch.randn(1, 3, h, w, generator=g), sigma)
        out += amount * noise / noise.std()
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    out += 0.3 * torch.sign(torch.sin((x + 0.5 * y) / 3.0))
    return (0.5 + 0.2 * out[0]).clamp(0, 1)


def disk_blur(image: torch.Tensor, radius: float) -> torch.Tensor:
    kernel = render_psf(torch.full((3,), float(radius)), PSFShape.disk(3), kernel_size(radius + 1))
    blurred = fft_convolve(image[None], kernel[None, None])[0, 0]
    return (torch.round(blurred.clamp(0, 1) * 255) / 255).float()


def score(a: torch.Tensor, b: torch.Tensor) -> float:
    return psnr(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy())


@pytest.fixture(scope="module")
def default_bundle():
    return resolve_model().load()


def test_restore_weight_is_one_below_the_radius_and_zero_above_it():
    keep_above = 8.0
    half = 2 ** (KEEP_TRANSITION / 2)
    radius = torch.tensor([0.0, 1.0, keep_above / half, keep_above, keep_above * half, 40.0])
    weight = restore_weight(radius, keep_above)
    assert weight[:3].tolist() == [1.0, 1.0, 1.0]
    assert weight[3].item() == pytest.approx(0.5)
    assert weight[4:].tolist() == [0.0, 0.0]
    dense = restore_weight(torch.linspace(0, 40, 400), keep_above)
    assert bool((dense[1:] <= dense[:-1]).all())


def test_low_pass_on_a_shrunk_copy_matches_a_direct_gaussian():
    image = texture(96, 128, seed=1)
    for sigma in (4.0, 8.0):
        direct = gaussian_blur(image[None], sigma)[0]
        fast = low_pass(image, sigma)
        inner = (slice(None), slice(24, -24), slice(24, -24))  # away from the edges, which each pads its own way
        error = (fast - direct)[inner].abs().mean() / (image - direct)[inner].abs().mean()
        assert error < 0.1, (sigma, float(error))
    assert torch.equal(low_pass(image, 0.0), image)


def test_a_varying_low_pass_at_one_level_equals_that_level():
    image = texture(48, 64, seed=2)
    for sigma in SIGMAS[:5]:
        out = varying_low_pass(image, torch.full((48, 64), sigma))
        assert torch.allclose(out, low_pass(image, sigma), atol=1e-6)
    # Between two levels, between them.
    half = varying_low_pass(image, torch.full((48, 64), math.sqrt(2.0)))
    assert torch.allclose(half, 0.5 * low_pass(image, 1.0) + 0.5 * low_pass(image, 2.0), atol=1e-6)


def test_strength_zero_and_one_are_exact():
    source, restored = texture(40, 50, seed=3), texture(40, 50, seed=4)
    radius = torch.full((40, 50), 6.0)
    assert torch.equal(apply_strength(source, restored, radius, 0.0), source)
    assert torch.equal(apply_strength(source, restored, radius, 1.0), restored)


def test_a_strength_keeps_a_smaller_blur_not_a_faded_copy():
    # Half strength on an edge blurred by 8 px: the edge's width (10-90 % rise) shrinks towards the sharp edge's,
    # where fading the restoration into the input would keep the blurred edge's full width under a sharp step.
    sharp = torch.zeros(3, 8, 160)
    sharp[..., 80:] = 1.0
    blurred = gaussian_blur(sharp[None], 4.0)[0]  # sigma 4: a disk of radius 8
    radius = torch.full((8, 160), 8.0)
    half = apply_strength(blurred, sharp, radius, 0.5)
    faded = blurred + 0.5 * (sharp - blurred)

    def width(profile):  # pixels between 2 % and 98 % of the rise
        row = profile[0, 4]
        return int(((row > 0.02) & (row < 0.98)).sum())

    def jump(profile):  # the largest step between neighbours
        return float(profile[0, 4].diff().abs().max())

    # Measured: widths 6 (half strength), 14 (faded), 16 (blurred); the faded edge jumps by 0.55 at once.
    assert width(half) <= width(blurred) * 0.5 and width(half) > width(sharp)
    assert width(faded) >= width(blurred) * 0.8
    assert jump(half) < 0.25 < jump(faded)


def test_strength_through_the_pipeline(default_bundle):
    pipe = DeblurPipeline.from_bundle(default_bundle, device="cpu")
    sharp = texture(96, 128, seed=5)
    blurry = disk_blur(sharp, 3.0)
    full = pipe.restore(blurry)
    assert torch.equal(DeblurPipeline.from_bundle(default_bundle, device="cpu", strength=1.0).restore(blurry), full)
    none = DeblurPipeline.from_bundle(default_bundle, device="cpu", strength=0.0).restore(blurry)
    assert torch.equal(none, blurry)
    scores = [score(blurry, sharp)]
    for strength in (0.25, 0.5, 0.75):
        partial = DeblurPipeline.from_bundle(default_bundle, device="cpu", strength=strength).restore(blurry)
        scores.append(score(partial, sharp))
    scores.append(score(full, sharp))
    # Measured: 24.97, 25.68, 25.77, 25.82, 25.83 dB: each step nearer the sharp image.
    assert all(b > a for a, b in zip(scores, scores[1:], strict=False)), scores


def test_the_background_blur_is_kept_and_the_subject_restored(default_bundle):
    # A layered scene: a subject in the middle blurred by 2 px before a background blurred by 16 px.
    h, w = 192, 256
    subject_sharp, background_sharp = texture(h, w, seed=6), texture(h, w, seed=7)
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    inside = ((y - 96) / 60) ** 2 + ((x - 128) / 72) ** 2 < 1
    blurry = torch.where(inside, disk_blur(subject_sharp, 2.0), disk_blur(background_sharp, 16.0))
    sharp = torch.where(inside, subject_sharp, background_sharp)
    full = DeblurPipeline.from_bundle(default_bundle, device="cpu")
    kept = DeblurPipeline.from_bundle(default_bundle, device="cpu", keep_background_blur=4.0)
    out_full, out_kept = full.restore(blurry), kept.restore(blurry)

    distance = torch.hypot((y - 96) / 60, (x - 128) / 72)
    background = distance > 1.4  # away from the depth edge, where the map changes over a few dozen pixels
    subject = distance < 0.7
    # Measured: the map reads the subject 2.1-2.7 px and the background 8-14; the background changes by 0 levels
    # (49.5 at most with a full deblur), the subject gains 0.98 dB either way.
    levels = (out_kept - blurry)[:, background].abs().max().item() * 255
    assert levels <= 1.0, levels
    assert (out_full - blurry)[:, background].abs().max().item() * 255 > 5  # the full deblur did change it

    def gain(out):
        return score(out[:, subject][:, None], sharp[:, subject][:, None]) - score(
            blurry[:, subject][:, None], sharp[:, subject][:, None]
        )

    assert gain(out_full) > 0.3
    assert gain(out_kept) >= gain(out_full) - 0.01, (gain(out_kept), gain(out_full))


def test_keeping_the_background_blur_needs_an_estimator():
    model, prior = tiny_model(prior=True)
    with pytest.raises(SettingError, match="needs a blur estimator"):
        DeblurPipeline(model, prior, device="cpu", keep_background_blur=8.0)
    # Without an estimator a strength assumes the blur the pass is meant for, everywhere.
    pipe = DeblurPipeline(model, prior, device="cpu", strength=0.5, window=64)
    image = texture(64, 64, seed=8)
    full = DeblurPipeline(model, prior, device="cpu", window=64).restore(image)
    radius = torch.full((64, 64), pipe.settings.scale_radius)
    assert torch.allclose(pipe.restore(image), apply_strength(image, full, radius, 0.5), atol=1e-6)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("strength", -0.1, "strength must be a number from 0 to 1"),
        ("strength", 1.5, "strength must be a number from 0 to 1"),
        ("strength", float("nan"), "strength must be a number from 0 to 1"),
        ("keep_background_blur", 0.0, "keep background blur must be a positive radius"),
        ("keep_background_blur", float("inf"), "keep background blur must be a positive radius"),
    ],
)
def test_bad_strength_and_kept_blur_are_setting_errors(field, value, message):
    model, prior = tiny_model(prior=True)
    with pytest.raises(SettingError, match=message):
        DeblurPipeline(model, prior, device="cpu", **{field: value})


def test_the_kept_region_skips_its_tiles(default_bundle):
    # All blur above the threshold: nothing to restore, no tile runs, the input comes back.
    pipe = DeblurPipeline.from_bundle(default_bundle, device="cpu", keep_background_blur=4.0)
    image = texture(64, 96, seed=9)
    calls = []
    out = pipe.restore(image, progress=lambda done, total: calls.append(total), radius=torch.full((64, 96), 20.0))
    assert torch.equal(out, image) and calls == []
    np.testing.assert_array_equal(out.numpy(), image.numpy())
