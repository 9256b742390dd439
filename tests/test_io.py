import functools
import os

import numpy as np
import pytest
from PIL import Image, ImageCms

from swintormer_cli import io as sio
from swintormer_cli.io import ImageReadError, ImageWriteError, read_image, write_image

from .helpers import gradient_image, png_header, truncated_jpeg, truncated_png


@functools.cache
def _icc() -> bytes:
    # Once per session: the profile's header carries its creation time, so two calls a second apart differ.
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    return exif.tobytes()


def test_16bit_png_round_trips_at_16_bits(tmp_path):
    img = gradient_image(30, 40, dtype=np.uint16)
    path = tmp_path / "a.png"
    write_image(path, img)
    back = read_image(path)
    assert back.bit_depth == 16 and np.array_equal(back.pixels, img)


def test_16bit_png_keeps_icc_and_exif(tmp_path):
    img = gradient_image(12, 20, dtype=np.uint16)
    like = sio.LoadedImage(tmp_path / "src.png", img, icc_profile=_icc(), exif=_exif(1))
    path = tmp_path / "b.png"
    write_image(path, img, like=like)
    back = read_image(path)
    assert back.bit_depth == 16 and np.array_equal(back.pixels, img)
    assert back.icc_profile == _icc()
    with Image.open(path) as im:
        assert im.getexif().get(0x010F) == "TestCam"


def test_rgba_alpha_passes_through_bit_for_bit(tmp_path):
    rgb = gradient_image(25, 35)
    alpha = np.random.default_rng(1).integers(0, 256, (25, 35), dtype=np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([rgb, alpha])).save(path)
    loaded = read_image(path)
    assert np.array_equal(loaded.alpha, alpha)
    out = tmp_path / "out.png"
    write_image(out, 255 - loaded.pixels, like=loaded)
    back = np.asarray(Image.open(out))
    assert back.shape == (25, 35, 4) and np.array_equal(back[..., 3], alpha)


def test_jpeg_with_orientation_6_and_icc_comes_out_upright_with_its_metadata(tmp_path):
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:10, :10] = (255, 0, 0)  # a red block in the stored top-left corner
    src = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(src, exif=_exif(6), icc_profile=_icc(), quality=95)
    loaded = read_image(src)
    # Orientation 6: the camera was turned; displayed upright, the image is 40 wide and 60 tall and the
    # stored top-left corner is at the top-right.
    assert loaded.pixels.shape == (60, 40, 3)
    assert loaded.pixels[:10, -10:, 0].mean() > 200 and loaded.pixels[-10:, :10, 0].mean() < 50
    out = tmp_path / "out.jpg"
    write_image(out, loaded.pixels, like=loaded)
    with Image.open(out) as im:
        assert im.size == (40, 60)
        assert im.info.get("icc_profile") == _icc()
        exif = im.getexif()
        assert exif.get(0x010F) == "TestCam"
        assert exif.get(0x0112, 1) == 1


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "LA", "I;16"])
def test_other_modes_are_read_as_rgb(tmp_path, mode):
    base = Image.fromarray(gradient_image(16, 24))
    im = base.convert(mode) if mode != "I;16" else Image.fromarray(gradient_image(16, 24, dtype=np.uint16)[..., 0])
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = tmp_path / f"m{suffix}"
    im.save(path)
    loaded = read_image(path)
    assert loaded.pixels.shape == (16, 24, 3)
    assert loaded.grey == (mode in ("L", "LA", "I;16"))
    assert (loaded.alpha is not None) == (mode == "LA")
    if mode == "I;16":
        assert loaded.bit_depth == 16
    out = tmp_path / f"out{suffix}"
    write_image(out, loaded.pixels, like=loaded)
    assert read_image(out).pixels.shape == (16, 24, 3)


def test_non_ascii_paths(tmp_path):
    path = tmp_path / "фото ü 写真.png"
    write_image(path, gradient_image(8, 8))
    assert read_image(path).pixels.shape == (8, 8, 3)


@pytest.mark.parametrize(
    "name,data,message",
    [
        ("empty.png", b"", "empty file"),
        ("random.png", bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)), "not an image"),
        ("cut.jpg", truncated_jpeg(), "truncated"),
        ("cut.png", truncated_png(), "truncated"),
        ("bomb.png", png_header(100000, 100000), "decompression bomb"),
    ],
)
def test_bad_files_give_one_clear_line(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "x.png"

    def boom(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_image(path, gradient_image(8, 8))
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ImageWriteError) as info:
        write_image(blocker / "out.png", gradient_image(8, 8))
    assert str(info.value).startswith(str(blocker / "out.png"))


def test_16bit_to_jpeg_is_converted_with_a_note(tmp_path):
    notes = write_image(tmp_path / "a.jpg", gradient_image(8, 8, dtype=np.uint16))
    assert any("8 bits" in n for n in notes)
    assert read_image(tmp_path / "a.jpg").bit_depth == 8


def test_written_images_get_ordinary_file_permissions(tmp_path):
    # The temporary file is private (0o600); the finished image must be readable like any other new file.
    old = os.umask(0o022)
    try:
        write_image(tmp_path / "out.png", gradient_image(8, 8))
    finally:
        os.umask(old)
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o644


def _rich_exif() -> bytes:
    """EXIF with tags in IFD0, in the Exif sub-IFD and in the GPS sub-IFD, as cameras write them."""
    exif = Image.Exif()
    exif.load(_exif(1))
    exif.get_ifd(0x8769)[0x829A] = 1 / 250  # ExposureTime
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:00:00"  # DateTimeOriginal
    exif.get_ifd(0x8825)[0x0001] = "N"  # GPSLatitudeRef
    return exif.tobytes()


@pytest.mark.parametrize("channels", [3, 4, 1])
def test_16bit_tiff_keeps_icc_and_exif(tmp_path, channels):
    img = gradient_image(12, 20, dtype=np.uint16)
    alpha = np.random.default_rng(2).integers(0, 65536, (12, 20), dtype=np.uint16) if channels == 4 else None
    if channels == 1:
        img = np.repeat(img[..., :1], 3, axis=2)
    like = sio.LoadedImage(
        tmp_path / "src.tif", img, alpha=alpha, grey=channels == 1, icc_profile=_icc(), exif=_rich_exif()
    )
    path = tmp_path / "b.tif"
    write_image(path, img, like=like)
    back = read_image(path)
    assert back.bit_depth == 16 and np.array_equal(back.pixels, img) and back.grey == (channels == 1)
    assert (back.alpha is None) if alpha is None else np.array_equal(back.alpha, alpha)
    assert back.icc_profile == _icc()
    kept = Image.Exif()
    kept.load(back.exif)
    assert kept.get(0x010F) == "TestCam" and 273 not in kept and 34675 not in kept  # not the TIFF's own layout
    with Image.open(path) as im:
        exif = im.getexif()
        assert exif.get(0x010F) == "TestCam"
        assert exif.get_ifd(0x8769).get(0x9003) == "2024:05:01 10:00:00"
        assert float(exif.get_ifd(0x8769).get(0x829A)) == pytest.approx(1 / 250)
        assert exif.get_ifd(0x8825).get(0x0001) == "N"


def test_a_write_syncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    import stat

    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_image(tmp_path / "x.png", gradient_image(8, 8))
    assert synced == [False, True]  # the file's data, then the folder's entry for it


def test_partial_files_of_a_killed_write_are_removed(tmp_path):
    (tmp_path / ".x.png.k2j3h_9a.part").write_bytes(b"half an image")  # what a SIGKILL mid-write leaves
    (tmp_path / ".other.png.abc.part").write_bytes(b"another file's")
    (tmp_path / ".x.png.notes").write_bytes(b"not ours")
    assert sio.remove_partial_files(tmp_path / "x.png") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.png.abc.part", ".x.png.notes"]


@pytest.mark.parametrize("lossless", [True, False])
def test_a_webp_keeps_its_coding_lossless_or_lossy(tmp_path, lossless):
    pixels = gradient_image(40, 56)
    src = tmp_path / "in.webp"
    Image.fromarray(pixels).save(src, lossless=lossless, quality=90)
    image = read_image(src)
    assert image.lossless is lossless
    write_image(tmp_path / "out.webp", image.pixels, like=image, quality=50)
    again = read_image(tmp_path / "out.webp")
    assert again.lossless is lossless
    if lossless:  # bit for bit, whatever --quality says
        np.testing.assert_array_equal(again.pixels, image.pixels)
    # An animated lossless WebP: its first frame's coding counts.
    frames = [Image.fromarray(pixels), Image.fromarray(255 - pixels)]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], lossless=lossless)
    assert read_image(tmp_path / "anim.webp").lossless is lossless


def test_a_file_that_cannot_be_written_is_a_file_error_and_an_image_one_is_its_kind(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(sio.FileWriteError) as info:
        sio.atomic_write_bytes(blocker / "registry.json", b"{}")
    assert not isinstance(info.value, ImageWriteError) and "registry.json" in str(info.value)
    with pytest.raises(ImageWriteError, match="out.png"):
        write_image(blocker / "out.png", gradient_image(4, 4))
    assert issubclass(ImageWriteError, sio.FileWriteError)
