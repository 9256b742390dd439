import math

import pytest
import torch

from swintormer_cli.data.degradation import (
    Degradation,
    DegradationConfig,
    demosaic_bilinear,
    linear_to_srgb,
    mosaic,
    srgb_to_linear,
)
from swintormer_cli.data.jpeg import jpeg
from swintormer_cli.data.psf import PSFShape, fft_convolve, render_psf


def _shapes(n):
    g = torch.Generator().manual_seed(0)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
    return PSFShape(
        blades=torch.tensor([0.0, 5, 6, 9] * (n // 4)),
        rotation=u(0, math.pi),
        softness=u(0, 0.5),
        ring=u(-0.5, 0.5),
        cats_eye=u(0, 0.5),
        cats_eye_angle=u(0, 6.28),
        gaussian=u(0, 1),
    )


def test_every_psf_is_non_negative_and_sums_to_one():
    radii = torch.tensor([0.0, 0.3, 1.0, 2.5, -3.0, 6.0, -8.0, 11.0])
    kernels = render_psf(radii, _shapes(8), size=31, supersample=4)
    assert (kernels >= 0).all()
    assert torch.allclose(kernels.sum(dim=(-2, -1)), torch.ones(8), atol=1e-5)


def test_psf_shapes_differ_as_described():
    n = 4
    disk = render_psf(torch.full((n,), 6.0), PSFShape.disk(n), 17, 8)[0]
    # A round hard disk: symmetric, flat inside.
    assert torch.allclose(disk, disk.flip(-1), atol=1e-6) and torch.allclose(disk, disk.T, atol=1e-6)
    ring = PSFShape.disk(2)
    ring.ring = torch.tensor([0.6, 0.6])
    front_back = render_psf(torch.tensor([6.0, -6.0]), ring, 17, 8)
    centre, rim = (8, 8), (8, 13)
    # A bright ring on one side of focus is a bright centre on the other (spherical aberration).
    assert front_back[0][rim] > front_back[0][centre] and front_back[1][rim] < front_back[1][centre]


def test_radius_zero_leaves_the_image_unchanged_before_noise():
    cfg = DegradationConfig(
        recipe="disk",
        depth_weights={"blobs": 1.0, "plane": 0.0, "layered": 0.0},
        max_radius=(0.0, 0.0),
        read_noise=(0.0, 0.0),
        shot_noise=(0.0, 0.0),
    )
    sharp = torch.rand(2, 3, 40, 50)
    sharp = torch.round(sharp * 255) / 255
    out = Degradation(cfg)(sharp, torch.Generator().manual_seed(0))
    assert torch.allclose(out.blurry, sharp, atol=1 / 255 / 2)


def test_the_same_seed_gives_the_same_batch():
    sharp = torch.rand(3, 3, 48, 48)
    cfg = DegradationConfig(jpeg_probability=0.5, bayer_probability=0.5, exposure_jitter=0.05)
    a = Degradation(cfg)(sharp, torch.Generator().manual_seed(7))
    b = Degradation(cfg)(sharp, torch.Generator().manual_seed(7))
    c = Degradation(cfg)(sharp, torch.Generator().manual_seed(8))
    assert torch.equal(a.blurry, b.blurry) and not torch.equal(a.blurry, c.blurry)


def test_a_layered_scene_keeps_its_in_focus_layer_sharp():
    cfg = DegradationConfig(
        depth_weights={"blobs": 0.0, "plane": 0.0, "layered": 1.0},
        max_radius=(6.0, 6.0),
        read_noise=(0.0, 0.0),
        shot_noise=(0.0, 0.0),
        chromatic=(0.0, 0.0),
        gaussian=(0.0, 0.0),
    )
    torch.manual_seed(0)
    sharp = torch.round(torch.rand(16, 3, 64, 64) * 255) / 255
    out = Degradation(cfg)(sharp, torch.Generator().manual_seed(1))
    in_focus = (out.foreground_radius == 0).nonzero().flatten()
    out_of_focus = (out.foreground_radius.abs() > 1).nonzero().flatten()
    assert len(in_focus) >= 3 and len(out_of_focus) >= 3
    for i in in_focus:
        # Focused on the occluder: every pixel of it is untouched, even at its edge over the blurred background.
        mask = out.foreground[i, 0] > 0.5
        assert mask.any() and out.radius[i].abs().max() > 1
        assert torch.allclose(out.blurry[i][:, mask], sharp[i][:, mask], atol=1e-6)
    for i in out_of_focus:
        mask = out.foreground[i, 0] > 0.5
        assert (out.blurry[i][:, mask] - sharp[i][:, mask]).abs().mean() > 0.01


@pytest.mark.parametrize("recipe", ["disk", "lens"])
def test_odd_sized_batches(recipe):
    cfg = (
        DegradationConfig.defocus_v1()
        if recipe == "disk"
        else DegradationConfig(jpeg_probability=1.0, bayer_probability=1.0, tone_gamma=(0.8, 1.2), exposure_jitter=0.05)
    )
    sharp = torch.rand(3, 3, 37, 53)
    out = Degradation(cfg)(sharp, torch.Generator().manual_seed(0))
    assert out.blurry.shape == sharp.shape and out.sharp.shape == sharp.shape
    assert torch.isfinite(out.blurry).all() and out.blurry.min() >= 0 and out.blurry.max() <= 1
    assert (out.blurry - sharp).abs().mean() > 0.005


def test_defocus_v1_uses_its_ranges():
    cfg = DegradationConfig.defocus_v1()
    sharp = torch.rand(16, 3, 48, 48)
    out = Degradation(cfg)(sharp, torch.Generator().manual_seed(0))
    r_max = out.radius.amax(dim=(1, 2, 3))
    assert (r_max >= 2.0 - 1e-4).all() and (r_max <= 8.0 + 1e-4).all()
    r_min = out.radius.amin(dim=(1, 2, 3))
    assert (r_min <= 0.4 * r_max + 1e-4).all()


def test_fft_convolution_matches_direct_convolution():
    img = torch.rand(2, 3, 30, 41)
    k = torch.rand(2, 1, 3, 7, 7)
    out = fft_convolve(img, k)[:, 0]
    pad = torch.nn.functional.pad(img, (3, 3, 3, 3), mode="reflect")
    ref = torch.stack(
        [torch.nn.functional.conv2d(pad[i : i + 1], k[i, 0].flip(-1, -2)[:, None], groups=3)[0] for i in range(2)]
    )
    assert torch.allclose(out, ref, atol=1e-4)


def test_srgb_round_trip_jpeg_and_bayer():
    x = torch.rand(2, 3, 24, 40)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    high = jpeg(x, torch.tensor([100.0, 100.0]))
    low = jpeg(x, torch.tensor([10.0, 10.0]))
    assert (high - x).abs().mean() < (low - x).abs().mean()
    flat = torch.full((1, 3, 8, 8), 0.4)
    assert torch.allclose(demosaic_bilinear(mosaic(flat))[..., 1:-1, 1:-1], flat[..., 1:-1, 1:-1], atol=1e-6)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError):
        DegradationConfig(recipe="gaussian")
    with pytest.raises(ValueError):
        DegradationConfig(max_radius=(5, 1))
    with pytest.raises(ValueError):
        DegradationConfig.from_dict({"radius": 3})


def test_a_mixed_batch_keeps_its_order_and_shapes():
    sharp = torch.rand(6, 3, 40, 40)
    out = Degradation(DegradationConfig(disk_fraction=0.5))(sharp, torch.Generator().manual_seed(0))
    assert out.blurry.shape == sharp.shape and torch.equal(out.sharp, sharp.clamp(0, 1))
    assert out.psfs.shape[:2] == (6, 3) and torch.allclose(out.psfs.sum(dim=(-2, -1)), torch.ones(6, 3), atol=1e-5)


def test_an_elliptical_psf_is_narrower_along_its_angle():
    def spread(kernel):
        size = kernel.shape[-1]
        t = torch.arange(size, dtype=torch.float32) - size // 2
        ys, xs = torch.meshgrid(t, t, indexing="ij")
        return float((kernel * xs * xs).sum()), float((kernel * ys * ys).sum())

    disk = PSFShape.disk(3)
    disk.aspect = torch.tensor([1.0, 0.5, 0.5])
    disk.aspect_angle = torch.tensor([0.0, 0.0, math.pi / 2])
    kernels = render_psf(torch.full((3,), 8.0), disk, size=21, supersample=4)
    assert torch.allclose(kernels.sum(dim=(-2, -1)), torch.ones(3), atol=1e-5)
    (rx, ry), (ex, ey), (fx, fy) = (spread(k) for k in kernels)
    assert rx == pytest.approx(ry, rel=0.02)  # aspect 1: round
    assert ex / ey == pytest.approx(0.25, rel=0.1)  # half as wide along x: a quarter of the variance
    assert fy / fx == pytest.approx(0.25, rel=0.1) and fx == pytest.approx(ey, rel=0.02)  # turned by 90 degrees
    # Without an aspect the kernels are the ones from before, exactly.
    assert torch.equal(render_psf(torch.full((1,), 8.0), PSFShape.disk(1), 21, 4)[0], kernels[0])


def test_elliptical_kernels_are_drawn_only_when_asked():
    sharp = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    plain = Degradation(DegradationConfig(max_radius=(3.0, 4.0)))(sharp, torch.Generator().manual_seed(2))
    off = Degradation(DegradationConfig(max_radius=(3.0, 4.0), aspect_probability=0.0))
    assert torch.equal(off(sharp, torch.Generator().manual_seed(2)).blurry, plain.blurry)
    squeezed = Degradation(DegradationConfig(max_radius=(3.0, 4.0), aspect_probability=1.0, aspect=(0.5, 0.5)))
    out = squeezed(sharp, torch.Generator().manual_seed(2))
    assert not torch.equal(out.blurry, plain.blurry) and torch.isfinite(out.blurry).all()
    with pytest.raises(ValueError, match="aspect"):
        DegradationConfig(aspect=(0.0, 1.0))


def test_a_resampled_image_keeps_its_softness_in_the_target():
    """resample_probability 1: target and input are both the image shrunk and enlarged again; nothing finer than
    the shrunk size survives in either, and the blur comes on top of that softness."""
    sharp = torch.rand(2, 3, 60, 60, generator=torch.Generator().manual_seed(3))
    quiet = dict(recipe="disk", max_radius=(0.0, 0.0), read_noise=(0.0, 0.0), shot_noise=(0.0, 0.0))
    plain = Degradation(DegradationConfig(**quiet))(sharp, torch.Generator().manual_seed(4))
    cfg = DegradationConfig(**quiet, resample_probability=1.0, resample=(3.0, 3.0))
    out = Degradation(cfg)(sharp, torch.Generator().manual_seed(4))

    def fine_share(x):  # share of the energy above a third of the band (what a 3x enlargement cannot hold)
        spectrum = torch.fft.rfft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
        fy = torch.fft.fftfreq(x.shape[-2]).abs()[:, None]
        fx = torch.fft.rfftfreq(x.shape[-1])[None, :]
        return float(spectrum[..., torch.maximum(fy, fx) > 0.5 / 3 + 0.03].sum() / spectrum.sum())

    assert fine_share(plain.sharp) > 0.8 and fine_share(out.sharp) < 0.06  # bicubic leaks a little
    assert torch.allclose(out.blurry, out.sharp, atol=1 / 255)  # radius 0, no noise: the input is that target
    # Off (the default), nothing is drawn for it: the batch is the one from before.
    off = Degradation(DegradationConfig(**quiet, resample_probability=0.0))(sharp, torch.Generator().manual_seed(4))
    assert torch.equal(off.blurry, plain.blurry)
    with pytest.raises(ValueError, match="resample"):
        DegradationConfig(resample=(0.5, 2.0))
