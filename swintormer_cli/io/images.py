"""Images in and out, keeping what photographers care about.

Reading: 8 and 16-bit PNG and TIFF, JPEG, WebP, BMP; grey, RGB, RGBA, palette and CMYK; the EXIF orientation
applied; the alpha channel, EXIF block and ICC profile kept aside to be written back; whether a WebP was
lossless; a decompression-bomb guard that checks the header's pixel count before anything is decoded.
Pillow reads and writes everything 8-bit with its metadata; 16-bit colour, which Pillow cannot hold, is decoded
and encoded by OpenCV, whose encoders cannot carry metadata (``metadata.py`` adds it back). Writing is atomic
(``files.py``). Errors are ``ImageReadError`` / ``ImageWriteError``, one line naming the file and the problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .files import FileWriteError, atomic_write_bytes, one_line
from .metadata import ORIENTATION_TAG, add_png_metadata, add_tiff_metadata, upright_exif

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"})


OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif", "tif": ".tif"}


DEFAULT_MAX_PIXELS = 300_000_000


_PIL_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}


# Truncated files must fail, not decode half an image silently.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageReadError(Exception):
    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class ImageWriteError(FileWriteError):
    """An image that cannot be encoded or written."""


def max_pixels() -> int:
    """The largest image read, in pixels: ``SWINTORMER_MAX_PIXELS``, else 300 million. A value that is not a
    positive whole number is a ``ValueError`` naming the variable (the CLI checks it before any work)."""
    text = os.environ.get("SWINTORMER_MAX_PIXELS", "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"SWINTORMER_MAX_PIXELS={text!r} is not a positive whole number of pixels "
            f"(the default is {DEFAULT_MAX_PIXELS})"
        )
    return value


@dataclass
class LoadedImage:
    path: Path
    pixels: np.ndarray
    """HxWx3 RGB (grey replicated), uint8 or uint16, upright."""
    alpha: np.ndarray | None = None
    """HxW, the dtype of ``pixels``, untouched."""
    grey: bool = False
    icc_profile: bytes | None = None
    exif: bytes | None = None
    """EXIF with the orientation reset to 1 (the pixels are upright now)."""
    format: str = ""
    notes: list[str] = field(default_factory=list)
    lossless: bool = False
    """Stored losslessly in a format that has both modes (WebP): its outputs in that format stay lossless."""

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    def to_float(self) -> np.ndarray:
        return to_unit(self.pixels)


# -- reading --------------------------------------------------------------------------------------------
def _png_bit_depth(head: bytes) -> int | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


def _webp_lossless(data: bytes) -> bool:
    """Whether a WebP file's (first) image is coded losslessly (a VP8L bitstream) rather than lossily (VP8)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False

    def first_frame(start: int, end: int) -> bool | None:
        at = start
        while at + 8 <= end:
            kind, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
            if kind in (b"VP8L", b"VP8 "):
                return kind == b"VP8L"
            if kind == b"ANMF":  # an animation frame: 16 bytes of frame header, then its own chunks
                return first_frame(at + 8 + 16, min(end, at + 8 + size))
            at += 8 + size + (size & 1)
        return None

    return bool(first_frame(12, len(data)))


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.swapaxes(x[::-1, ::-1], 0, 1),
        8: lambda x: np.rot90(x, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(a)) if op else a


def _decode_16bit(path: Path, data: bytes) -> np.ndarray:
    import cv2

    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageReadError(path, "damaged or unsupported 16-bit image")
    if array.ndim == 2:
        return array
    if array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path, keep_alpha: bool = True, limit: int | None = None) -> LoadedImage:
    """Read an image upright as RGB (uint8 or uint16) with its alpha, ICC profile and EXIF."""
    path = Path(path)
    data = _read_bytes(path)
    import io as _io

    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the size check below gives the clearer message
    try:
        im = _open_checked(path, _io.BytesIO(data), limit or max_pixels())
        fmt = im.format or ""
        # Everything from here on may decode pixel data (a PNG's EXIF can sit after its pixels, so getexif()
        # reads them): any failure is the file's, and becomes one line naming it.
        try:
            array, icc, exif, notes = _decode(path, im, data, fmt)
        except (ImageReadError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a decoder's error of any type means a damaged file
            text = one_line(exc)
            reason = "truncated file" if "truncated" in text.lower() else f"damaged image data ({text})"
            raise ImageReadError(path, reason) from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    array, alpha, grey = _split_channels(array)
    lossless = fmt == "WEBP" and _webp_lossless(data)
    alpha = alpha if keep_alpha else None
    return LoadedImage(path, np.ascontiguousarray(array), alpha, grey, icc, exif, fmt, notes, lossless)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, or an ``ImageReadError`` saying why there are none."""
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image")
    if not path.is_file():  # a FIFO or a device would block or never end
        raise ImageReadError(path, "not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(path, f"cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise ImageReadError(path, "empty file (0 bytes)")
    return data


def _open_checked(path: Path, stream, limit: int) -> Image.Image:
    """The image opened from its header alone, refused when it claims more than ``limit`` pixels."""
    try:
        im = Image.open(stream)
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "not an image, or a format this tool cannot read") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the header is the file's problem
        raise ImageReadError(path, f"damaged image header ({one_line(exc)})") from exc
    width, height = im.size
    if width * height > limit:
        raise ImageReadError(
            path,
            f"{width}x{height} pixels is over the limit of {limit:,} (a decompression bomb, or raise "
            "SWINTORMER_MAX_PIXELS)",
        )
    if width < 1 or height < 1:
        raise ImageReadError(path, "image has no pixels")
    return im


def _decode(path: Path, im: Image.Image, data: bytes, fmt: str):
    """(pixels upright, ICC profile, upright EXIF, notes): 16-bit colour through OpenCV, the rest through Pillow."""
    notes: list[str] = []
    icc = im.info.get("icc_profile") or None
    exif_obj = im.getexif()
    orientation = int(exif_obj.get(ORIENTATION_TAG, 1) or 1)
    exif = upright_exif(exif_obj) if len(exif_obj) else None
    sixteen = _png_bit_depth(data[:32]) == 16 or (fmt == "TIFF" and _tiff_bits(im) == 16)
    frames = int(getattr(im, "n_frames", 1) or 1)
    if frames > 1:  # an animated GIF, WebP or PNG, a multi-page TIFF
        notes.append(f"animated or multi-page: only the first of its {frames} frames was deblurred")
    if sixteen:
        array = _apply_orientation(_decode_16bit(path, data), orientation)
        if array.dtype != np.uint16:
            array = array.astype(np.uint16) * 257
        return array, icc, exif, notes
    im.load()
    array, icc, note = _pil_to_array(ImageOps.exif_transpose(im), icc)
    if note:
        notes.append(note)
    return array, icc, exif, notes


def _split_channels(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(HxWx3 RGB, the alpha or None, whether it was grey) of a decoded HxW or HxWxC array."""
    grey = array.ndim == 2 or array.shape[2] in (1, 2)
    alpha = None
    if array.ndim == 3 and array.shape[2] in (2, 4):
        alpha = array[..., -1].copy()
        array = array[..., :-1]
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return array, alpha, grey


def _tiff_bits(im: Image.Image) -> int:
    bits = getattr(im, "tag_v2", {}).get(258, 8)
    if isinstance(bits, tuple):
        bits = bits[0]
    return int(bits)


def _pil_to_array(im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, bytes | None, str | None]:
    """A decoded Pillow image -> (array with grey/RGB and optional alpha, ICC to keep, a note)."""
    mode = im.mode
    note = None
    if mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im, dtype=np.uint16).copy(), icc, None
    if mode in ("I", "F"):
        a = np.asarray(im)
        return np.clip(a, 0, 65535).astype(np.uint16), icc, None
    if mode == "1":
        return np.asarray(im.convert("L")).copy(), icc, None
    if mode == "L":
        return np.asarray(im).copy(), icc, None
    if mode == "LA":
        return np.asarray(im).copy(), icc, None
    if mode == "P":
        has_alpha = "transparency" in im.info or im.palette.mode == "RGBA"
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB")).copy(), icc, None
    if mode == "PA":
        return np.asarray(im.convert("RGBA")).copy(), icc, None
    if mode == "CMYK":
        # The profile describes CMYK values; it no longer applies to the converted RGB.
        note = "CMYK converted to RGB; its CMYK colour profile was dropped" if icc else "CMYK converted to RGB"
        return np.asarray(im.convert("RGB")).copy(), None, note
    if mode in ("RGB", "RGBA"):
        return np.asarray(im).copy(), icc, None
    converted = im.convert("RGBA" if "A" in mode else "RGB")
    return np.asarray(converted).copy(), icc, f"{mode} converted to {converted.mode}"


# -- writing --------------------------------------------------------------------------------------------
def output_suffix(ext: str, source: Path) -> str:
    """``auto`` keeps the source's suffix (BMP becomes PNG); otherwise png, jpg, webp or tiff."""
    if ext == "auto":
        suffix = source.suffix.lower()
        return ".png" if suffix == ".bmp" or suffix not in _PIL_FORMATS else suffix
    if ext.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {ext!r}; choose from auto, {', '.join(sorted(set(OUTPUT_FORMATS)))}")
    return OUTPUT_FORMATS[ext.lower()]


def _encode_16bit(pixels: np.ndarray, suffix: str, icc: bytes | None, exif: bytes | None) -> bytes:
    import cv2

    if pixels.ndim == 3 and pixels.shape[2] == 4:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    elif pixels.ndim == 3:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    else:
        bgr = pixels
    ok, buf = cv2.imencode(suffix, bgr)
    if not ok:
        raise ValueError("OpenCV could not encode the 16-bit image")
    data = buf.tobytes()
    if suffix == ".png":
        data = add_png_metadata(data, icc, exif)
    elif icc or exif:
        data = add_tiff_metadata(data, icc, exif)
    return data


def encode_image(
    pixels: np.ndarray,
    suffix: str,
    alpha: np.ndarray | None = None,
    grey: bool = False,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    quality: int = 95,
    lossless: bool = False,
) -> tuple[bytes, list[str]]:
    """Encode HxWx3 uint8/uint16 RGB (+alpha) into the format of ``suffix``; returns (bytes, notes). ``lossless``:
    WebP written losslessly (``quality`` then applies to JPEG and lossy WebP only)."""
    import io as _io

    notes: list[str] = []
    fmt = _PIL_FORMATS[suffix]
    if pixels.dtype == np.uint16 and fmt in ("JPEG", "WEBP", "BMP"):
        notes.append(f"{fmt} holds 8 bits per channel: written as 8-bit")
        pixels = (pixels.astype(np.uint32) * 255 + 32767) // 65535
        pixels = pixels.astype(np.uint8)
        if alpha is not None:
            alpha = ((alpha.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if alpha is not None and fmt in ("JPEG", "BMP"):
        notes.append(f"{fmt} has no alpha channel: transparency dropped")
        alpha = None
    channels = pixels[..., :1] if grey else pixels
    if alpha is not None:
        channels = np.concatenate([channels, alpha[..., None].astype(pixels.dtype)], axis=2)
    if channels.shape[2] == 1:
        channels = channels[..., 0]
    if pixels.dtype == np.uint16 and not (grey and alpha is None):
        return _encode_16bit(channels, suffix, icc_profile, exif), notes
    im = Image.fromarray(channels)  # 2-D uint16 becomes Pillow's 16-bit grey ("I;16")
    params: dict = {}
    if icc_profile:
        params["icc_profile"] = icc_profile
    if exif and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        params["exif"] = exif
    if fmt == "WEBP" and lossless:
        params["lossless"] = True
    elif fmt in ("JPEG", "WEBP"):
        params["quality"] = int(quality)
    if fmt == "JPEG":
        params["subsampling"] = 0 if quality >= 90 else 2
    if fmt == "PNG":
        # zlib's fastest level: 4x faster than Pillow's default 6 on a deblurred 12 MP photo (1.0 s against 3.9 s,
        # docs/speed.md) for a file a fifth larger; PNG is lossless either way.
        params["compress_level"] = 1
    buf = _io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue(), notes


def write_image(
    path: str | Path,
    pixels: np.ndarray,
    like: LoadedImage | None = None,
    quality: int = 95,
    strip_metadata: bool = False,
) -> list[str]:
    """Write ``pixels`` (HxWx3, uint8/uint16) to ``path`` with the alpha, grey-ness, metadata and (WebP) lossless
    coding of ``like`` (the image it was made from). Returns notes about anything that could not be kept."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _PIL_FORMATS:
        raise ImageWriteError(path, f"unknown image suffix {suffix!r}")
    like = like or LoadedImage(path, pixels)
    try:
        data, notes = encode_image(
            pixels,
            suffix,
            alpha=like.alpha,
            grey=like.grey,
            icc_profile=None if strip_metadata else like.icc_profile,
            exif=None if strip_metadata else like.exif,
            quality=quality,
            lossless=like.lossless,
        )
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - an encoder's error of any type: this file cannot be written
        raise ImageWriteError(path, f"cannot encode ({one_line(exc)})") from exc
    try:
        atomic_write_bytes(path, data)
    except FileWriteError as exc:
        raise ImageWriteError(path, exc.reason) from exc
    return notes


def pixel_peak(dtype) -> float:
    """The value of white for pixels of ``dtype``: 65535 (uint16), 255 (uint8), 1 (float, already in [0, 1])."""
    dtype = np.dtype(dtype)
    if dtype == np.uint16:
        return 65535.0
    if dtype == np.uint8:
        return 255.0
    return 1.0


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16 (or float) pixels -> float32 in [0, 1]."""
    return pixels.astype(np.float32) / pixel_peak(pixels.dtype)


def load_pixels(path: str | Path, bits: int) -> np.ndarray:
    """HxWx3 float32 in [0, 1], read at a protocol's bit depth: 8 reduces a 16-bit file the way OpenCV's default
    read does (the low byte dropped), 16 widens an 8-bit one. DPDD's single-view images are read at 8 bits, its
    dual-pixel views at 16 (Restormer's test and training scripts); evaluation and training both read so."""
    pixels = read_image(path, keep_alpha=False).pixels
    if bits == 8 and pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    elif bits == 16 and pixels.dtype == np.uint8:
        pixels = pixels.astype(np.uint16) * 257
    return to_unit(pixels)


def to_pixels(restored: np.ndarray, bit_depth: int) -> np.ndarray:
    """HxWx3 float in [0, 1] -> uint8 or uint16."""
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    return np.round(np.clip(restored, 0, 1) * pixel_peak(dtype)).astype(dtype)


# -- folders of images ----------------------------------------------------------------------------------
def is_image_name(path: Path) -> bool:
    """Whether ``path`` has the suffix of an image this tool reads."""
    return path.suffix.lower() in IMAGE_EXTENSIONS
