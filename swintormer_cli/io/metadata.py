"""Metadata carried into 16-bit outputs, which OpenCV encodes without any: the ICC profile and EXIF as PNG chunks, a
TIFF rebuilt with them, and EXIF made upright once the pixels are.

A 16-bit TIFF is rebuilt with Pillow's TIFF directory writer rather than written by ``tifffile``: tifffile writes
the ICC profile and IFD0 tags but not the Exif and GPS sub-IFDs that hold a photo's exposure and place, which this
rebuild keeps (``tests/test_io.py``, 16-bit TIFF with ICC and EXIF).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

ORIENTATION_TAG = 0x0112
"""The EXIF tag of the orientation."""


def upright_exif(exif: Image.Exif) -> bytes:
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
    for tag in _TIFF_LAYOUT_TAGS - {ORIENTATION_TAG} | {34675}:  # and the ICC profile travels on its own
        copy.pop(tag, None)
    if ORIENTATION_TAG in copy:
        copy[ORIENTATION_TAG] = 1
    return copy.tobytes()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def add_png_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR (the PNG spec puts iCCP before IDAT)."""
    head = 8 + 4 + 4 + 13 + 4  # signature, IHDR length/type/data/crc
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:
        payload = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        extra += _png_chunk(b"eXIf", payload)
    return png[:head] + extra + png[head:]


# Tags that describe a TIFF's pixel layout: the encoder's, never copied from EXIF.
_TIFF_LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 266, 273, 274, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338, 339}
)


_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 0x8769, 0x8825, 0xA005


def add_tiff_metadata(tiff: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
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
