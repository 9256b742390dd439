"""Blur maps as images: the radius of every pixel in a 16-bit grey PNG, and a colour preview with a scale bar.

The 16-bit file holds the radius in hundredths of a pixel (``RADIUS_UNIT``): a value of 1250 is a blur of 12.5 px
of radius, in the photo's own pixels; 65535 (655 px) is the most it holds. The preview maps the radius to colour
on a log scale (dark: sharp; bright: strongly blurred) up to ``PREVIEW_TOP`` px, with the scale drawn under it.

    radius = load_blur_map("photo_deblurred.blur.png")     # (H, W) float32 px
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RADIUS_UNIT = 0.01
"""Pixels of radius per level of the 16-bit map."""
PREVIEW_TOP = 64.0
"""The radius (px) at the bright end of the preview's colour scale."""
PREVIEW_TICKS = (0, 1, 2, 4, 8, 16, 32, 64)
MAP_SUFFIX = ".blur.png"
PREVIEW_SUFFIX = ".blur-preview.png"
# Colour anchors of the preview, dark to bright (sharp to blurred): perceived brightness rises steadily, so the
# map reads in grey too.
_ANCHORS = np.array(
    [[10, 8, 40], [70, 25, 115], [160, 45, 110], [225, 95, 60], [250, 175, 50], [252, 245, 170]], dtype=np.float32
)


def map_paths(output: str | Path) -> tuple[Path, Path]:
    """The blur map and its preview written beside an output image: ``name.blur.png``, ``name.blur-preview.png``."""
    output = Path(output)
    stem = output.with_suffix("")
    return stem.with_name(stem.name + MAP_SUFFIX), stem.with_name(stem.name + PREVIEW_SUFFIX)


def radius_to_levels(radius: np.ndarray) -> np.ndarray:
    """(H, W) radius in px -> (H, W) uint16 levels of ``RADIUS_UNIT``."""
    return np.clip(np.round(np.asarray(radius, dtype=np.float64) / RADIUS_UNIT), 0, 65535).astype(np.uint16)


def levels_to_radius(levels: np.ndarray) -> np.ndarray:
    return np.asarray(levels, dtype=np.float32) * np.float32(RADIUS_UNIT)


def _position(radius: np.ndarray) -> np.ndarray:
    """Radius -> [0, 1] along the preview's colour scale (log2(1 + r), so 0 px is the dark end)."""
    return np.clip(np.log2(1 + np.maximum(radius, 0)) / np.log2(1 + PREVIEW_TOP), 0, 1)


def colourise(radius: np.ndarray) -> np.ndarray:
    """(H, W) radius in px -> (H, W, 3) uint8 colours of the preview's scale."""
    t = _position(np.asarray(radius, dtype=np.float32)) * (len(_ANCHORS) - 1)
    low = np.minimum(t.astype(np.int64), len(_ANCHORS) - 2)
    frac = (t - low)[..., None]
    colours = _ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac
    return np.round(colours).astype(np.uint8)


def preview(radius: np.ndarray) -> np.ndarray:
    """The colour preview of a radius map with its scale bar under it: (H + bar, W, 3) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    radius = np.asarray(radius, dtype=np.float32)
    height, width = radius.shape
    text_size = int(np.clip(width / 45, 10, 28))
    bar = text_size + 8
    canvas = np.zeros((height + 2 * bar + 6, width, 3), dtype=np.uint8)
    canvas[:height] = colourise(radius)
    margin = max(4, width // 40)
    span = np.linspace(0, PREVIEW_TOP, max(2, width - 2 * margin), dtype=np.float32)
    ramp = colourise(np.exp2(_position(span) * np.log2(1 + PREVIEW_TOP)) - 1)
    canvas[height + 4 : height + 4 + bar, margin : margin + ramp.shape[0]] = ramp[None]
    im = Image.fromarray(canvas)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=text_size)
    y = height + 6 + bar
    for tick in PREVIEW_TICKS:
        x = margin + _position(np.float32(tick)) * (ramp.shape[0] - 1)
        draw.line([(x, height + 4 + bar - 4), (x, height + 4 + bar + 2)], fill=(255, 255, 255))
        last = tick == PREVIEW_TICKS[-1]
        anchor = "ra" if last else ("la" if tick == 0 else "ma")
        draw.text((x, y), f"{tick} px" if last else f"{tick}", fill=(230, 230, 230), font=font, anchor=anchor)
    draw.text((width - margin, height + 4 + bar // 2), "blur radius", fill=(20, 20, 20), font=font, anchor="rm")
    return np.asarray(im)


def write_blur_map(output: str | Path, radius) -> list[Path]:
    """Write the map of ``radius`` ((H, W) px, array or tensor) and its preview beside ``output``, atomically;
    returns their paths. An unwritable place is an ``ImageWriteError`` naming the file."""
    from .io import LoadedImage, write_image

    radius = np.asarray(radius, dtype=np.float32)
    map_path, preview_path = map_paths(output)
    levels = np.repeat(radius_to_levels(radius)[..., None], 3, axis=2)
    write_image(map_path, levels, like=LoadedImage(map_path, levels, grey=True))
    write_image(preview_path, preview(radius))
    return [map_path, preview_path]


def load_blur_map(path: str | Path) -> np.ndarray:
    """A 16-bit blur map file -> (H, W) float32 radius in px."""
    from .io import read_image

    image = read_image(path)
    if image.bit_depth != 16:
        raise ValueError(f"{path}: not a 16-bit blur map ({image.bit_depth}-bit)")
    return levels_to_radius(image.pixels[..., 0])
