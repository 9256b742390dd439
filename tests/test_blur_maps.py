"""Blur maps as images (blur_maps.py): the 16-bit file holds the radius, the preview reads at a glance."""

import numpy as np
import pytest

from swintormer_cli.blur_maps import (
    RADIUS_UNIT,
    colourise,
    levels_to_radius,
    load_blur_map,
    map_paths,
    preview,
    radius_to_levels,
    write_blur_map,
)
from swintormer_cli.io import ImageWriteError, read_image


def test_the_map_file_holds_the_radius_in_hundredths_of_a_pixel(tmp_path):
    radius = np.linspace(0, 40, 30 * 20, dtype=np.float32).reshape(30, 20)
    radius[0, 0] = 1000.0  # past the top: held at 655.35 px
    written = write_blur_map(tmp_path / "photo_deblurred.jpg", radius)
    assert [p.name for p in written] == ["photo_deblurred.blur.png", "photo_deblurred.blur-preview.png"]
    image = read_image(written[0])
    assert image.bit_depth == 16 and image.grey
    loaded = load_blur_map(written[0])
    assert loaded[0, 0] == pytest.approx(65535 * RADIUS_UNIT)
    np.testing.assert_allclose(loaded.ravel()[1:], radius.ravel()[1:], atol=RADIUS_UNIT / 2 + 1e-5)
    assert int(radius_to_levels(np.array([12.5]))[0]) == 1250
    assert levels_to_radius(np.array([1250]))[0] == pytest.approx(12.5)


def test_the_preview_brightens_with_the_radius_and_carries_its_scale(tmp_path):
    colours = colourise(np.array([[0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 200.0]])).astype(float)
    brightness = colours[0] @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(brightness[:-1]) > 0) and brightness[-1] == brightness[-2]  # held past the top
    shown = preview(np.full((50, 300), 3.0, dtype=np.float32))
    assert shown.shape[1:] == (300, 3) and shown.shape[0] > 50  # the map, then the scale under it
    assert np.all(shown[:50] == colourise(np.array([[3.0]]))[0, 0])
    assert len(np.unique(shown[50:].reshape(-1, 3), axis=0)) > 50  # a colour ramp and its labels


def test_map_paths_sit_beside_the_output():
    assert [p.name for p in map_paths("out/a.b.webp")] == ["a.b.blur.png", "a.b.blur-preview.png"]


def test_an_unwritable_place_is_an_error_naming_the_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(ImageWriteError, match="photo.blur.png"):
        write_blur_map(blocker / "photo.png", np.zeros((4, 4), dtype=np.float32))
