"""Images in and out, keeping what photographers care about.

Reading: 8 and 16-bit PNG and TIFF, JPEG, WebP, BMP; grey, RGB, RGBA, palette and CMYK; the EXIF
orientation applied; the alpha channel, EXIF block and ICC profile kept aside to be written back; a
decompression-bomb guard that checks the header's pixel count before anything is decoded.
Pillow reads and writes everything 8-bit with its metadata; 16-bit colour, which Pillow cannot hold, is
decoded and encoded by OpenCV, whose encoders cannot carry metadata: the ICC profile and EXIF are added to
16-bit PNGs as iCCP/eXIf chunks, and 16-bit TIFFs are rebuilt with them by Pillow's TIFF directory writer.

Writing is atomic: a temporary file (``.NAME.RANDOM.part``) in the destination folder, synced, renamed over
the destination, then the folder synced, so a crash, Ctrl-C or power cut leaves either the old file or the
new one, never half of one. Only a SIGKILL (or a power cut) mid-write can leave the temporary file;
``remove_partial_files`` removes those of one destination, which the next ``deblur`` of it does.

Errors are ``ImageReadError`` / ``ImageWriteError``, whose text is one line naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

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
_ORIENTATION = 0x0112

# Truncated files must fail, not decode half an image silently.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageReadError(Exception):
    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class ImageWriteError(Exception):
    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


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
    limit = limit or max_pixels()
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
    import io as _io

    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the size check below gives the clearer message
    try:
        try:
            im = Image.open(_io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise ImageReadError(path, "not an image, or a format this tool cannot read") from exc
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - as below: the header is the file's problem
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
        fmt = im.format or ""
        notes: list[str] = []
        # Everything from here on may decode pixel data (a PNG's EXIF can sit after its pixels, so getexif()
        # reads them): any failure is the file's, and becomes one line naming it.
        try:
            icc = im.info.get("icc_profile") or None
            exif_obj = im.getexif()
            orientation = int(exif_obj.get(_ORIENTATION, 1) or 1)
            exif = _upright_exif(exif_obj) if len(exif_obj) else None
            sixteen = _png_bit_depth(data[:32]) == 16 or (fmt == "TIFF" and _tiff_bits(im) == 16)
            frames = int(getattr(im, "n_frames", 1) or 1)
            if frames > 1:  # an animated GIF, WebP or PNG, a multi-page TIFF
                notes.append(f"animated or multi-page: only the first of its {frames} frames was deblurred")
            if sixteen:
                array = _decode_16bit(path, data)
                array = _apply_orientation(array, orientation)
                if array.dtype != np.uint16:
                    array = array.astype(np.uint16) * 257
            else:
                im.load()
                im = ImageOps.exif_transpose(im)
                array, icc, note = _pil_to_array(im, icc)
                if note:
                    notes.append(note)
        except (ImageReadError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a decoder's error of any type means a damaged file
            text = one_line(exc)
            reason = "truncated file" if "truncated" in text.lower() else f"damaged image data ({text})"
            raise ImageReadError(path, reason) from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous

    grey = array.ndim == 2 or array.shape[2] in (1, 2)
    alpha = None
    if array.ndim == 3 and array.shape[2] in (2, 4):
        alpha = array[..., -1].copy()
        array = array[..., :-1]
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if not keep_alpha:
        alpha = None
    lossless = fmt == "WEBP" and _webp_lossless(data)
    return LoadedImage(path, np.ascontiguousarray(array), alpha, grey, icc, exif, fmt, notes, lossless)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (decoders' messages sometimes span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _upright_exif(exif: Image.Exif) -> bytes:
    """The EXIF block to write back, with the orientation reset (the pixels are upright by then).

    Works on a copy: Pillow's ``exif_transpose`` reads the image's own EXIF object afterwards. A TIFF's
    first directory holds its pixel layout (strips, sizes, compression) next to the EXIF tags: those
    describe the source file, not the image, and are left out.
    """
    copy = Image.Exif()
    copy.load(exif.tobytes())
    for ifd in (0x8769, 0x8825):  # the Exif and GPS sub-IFDs travel with the copy
        if ifd in exif:
            copy.get_ifd(ifd).update(exif.get_ifd(ifd))
    for tag in _TIFF_LAYOUT_TAGS - {_ORIENTATION} | {34675}:  # and the ICC profile travels on its own
        copy.pop(tag, None)
    if _ORIENTATION in copy:
        copy[_ORIENTATION] = 1
    return copy.tobytes()


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


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _add_png_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR (the PNG spec puts iCCP before IDAT)."""
    head = 8 + 4 + 4 + 13 + 4  # signature, IHDR length/type/data/crc
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:
        payload = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        extra += _png_chunk(b"eXIf", payload)
    return png[:head] + extra + png[head:]


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
        data = _add_png_metadata(data, icc, exif)
    elif icc or exif:
        data = _add_tiff_metadata(data, icc, exif)
    return data


# Tags that describe a TIFF's pixel layout: the encoder's, never copied from EXIF.
_TIFF_LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 266, 273, 274, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338, 339}
)
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 0x8769, 0x8825, 0xA005


def _add_tiff_metadata(tiff: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Add an ICC profile and EXIF (its IFD0 tags, Exif and GPS sub-IFDs) to a TIFF that OpenCV encoded.

    OpenCV's TIFF encoder cannot carry metadata, so the file is rebuilt with Pillow's own TIFF directory
    writer: a header, one directory (the encoder's layout tags, then the metadata), then the encoder's
    strips copied byte for byte (Pillow relocates StripOffsets to follow the directory)."""
    import io as _io

    from PIL import TiffImagePlugin, TiffTags

    with Image.open(_io.BytesIO(tiff)) as im:
        source = im.tag_v2
        layout = {tag: source[tag] for tag in source}
        types = dict(source.tagtype)
    offsets, counts = layout.get(273), layout.get(279)
    if offsets is None or counts is None:
        raise ValueError("the 16-bit TIFF encoder wrote no strips; cannot add its metadata")
    offsets = (offsets,) if isinstance(offsets, int) else tuple(offsets)
    counts = (counts,) if isinstance(counts, int) else tuple(counts)
    order = "<" if tiff[:2] == b"II" else ">"
    head = tiff[:4] + struct.pack(order + "I", 8)
    ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=head)
    if exif:
        parsed = Image.Exif()
        parsed.load(exif)
        for tag, value in parsed.items():
            if tag in (_EXIF_IFD, _GPS_IFD):
                sub = dict(parsed.get_ifd(tag))
                if tag == _EXIF_IFD and _INTEROP_IFD in sub:
                    sub[_INTEROP_IFD] = dict(parsed.get_ifd(_INTEROP_IFD))
                if sub:
                    ifd[tag] = sub
                    ifd.tagtype[tag] = TiffTags.LONG
            elif tag not in _TIFF_LAYOUT_TAGS:
                ifd[tag] = value
    for tag, value in layout.items():
        ifd[tag] = value
        ifd.tagtype[tag] = types[tag]
    if icc:
        ifd[34675] = icc
        ifd.tagtype[34675] = TiffTags.UNDEFINED
    strips = [tiff[o : o + c] for o, c in zip(offsets, counts, strict=True)]
    starts = np.cumsum([0] + [len(s) for s in strips[:-1]]).tolist()
    ifd[273] = tuple(int(s) for s in starts)
    ifd[279] = counts
    ifd.tagtype[273] = ifd.tagtype[279] = TiffTags.LONG
    return head + ifd.tobytes(8) + b"".join(strips)


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


def new_file_mode() -> int:
    """The mode an ordinary new file gets here (0o666 less the umask); temporary files are created 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _partial_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_partial_files(path: str | Path) -> int:
    """Remove the temporary files that writes of ``path`` left when they were killed (SIGKILL, power cut);
    returns how many. Only ``.NAME.RANDOM.part`` files are touched, RANDOM without dots: never another
    destination's (whose name, ending in its own suffix, would put a dot there)."""
    path = Path(path)
    pattern = re.compile(re.escape(_partial_prefix(path)) + r"[A-Za-z0-9_]+\.part")
    removed = 0
    try:
        candidates = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return 0
    for leftover in candidates:
        try:
            leftover.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, synced, renamed into place, the folder synced."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_partial_prefix(path), suffix=".part", dir=path.parent)
    except OSError as exc:
        raise ImageWriteError(path, f"cannot write here ({exc.strerror or exc})") from exc
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ImageWriteError(path, f"cannot write ({exc.strerror or exc})") from exc
        raise


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
    atomic_write_bytes(path, data)
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


def natural_key(path: Path) -> list:
    """Sort key putting ``2.png`` before ``10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(root: str | Path, recursive: bool = True, key=None) -> list[Path]:
    """The image files in a folder (and its subfolders), hidden files left out, sorted (by ``key``); a file
    is a list of itself."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    pattern = "**/*" if recursive else "*"
    return sorted(
        (p for p in root.glob(pattern) if p.is_file() and is_image_name(p) and not p.name.startswith(".")), key=key
    )


def pair_images(
    source_dirs: list[Path], target_dir: Path, key=None
) -> tuple[list[tuple[list[Path], Path]], list[tuple[Path, Path]]]:
    """Each target image with its source(s) of the same name, one from each source folder: (pairs, and the
    (target, missing source) of each target left out)."""
    pairs, missing = [], []
    for target in list_images(target_dir, recursive=False, key=key):
        sources = [Path(d) / target.name for d in source_dirs]
        absent = [s for s in sources if not s.is_file()]
        if absent:
            missing.append((target, absent[0]))
        else:
            pairs.append((sources, target))
    return pairs, missing


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "ImageWriteError",
    "LoadedImage",
    "atomic_write_bytes",
    "encode_image",
    "fsync_folder",
    "is_image_name",
    "list_images",
    "load_pixels",
    "natural_key",
    "one_line",
    "output_suffix",
    "pair_images",
    "pixel_peak",
    "read_image",
    "remove_partial_files",
    "sha256_of",
    "to_pixels",
    "to_unit",
    "write_image",
]
