import logging

import numpy as np
import pytest
import torch

from swintormer_cli.data.datasets import (
    DegradingCollate,
    IndexedSamples,
    PairedImages,
    SharpImages,
    StepSampler,
    dpdd_dirs,
    list_images,
)
from swintormer_cli.data.degradation import Degradation, DegradationConfig

from .helpers import gradient_image, write_photos


def test_sharp_crops_are_a_function_of_seed_and_index(tmp_path):
    root = write_photos(tmp_path / "photos")
    a = SharpImages([root], crop_size=32, margin=4, scale=(0.5, 1.0), seed=1)
    b = SharpImages([root], crop_size=32, margin=4, scale=(0.5, 1.0), seed=1, cache=False)
    assert a[5].shape == (3, 40, 40)
    assert torch.equal(a[5], b[5]) and not torch.equal(a[5], a[6])
    assert not torch.equal(a[5], SharpImages([root], 32, 4, seed=2)[5])


def test_a_corrupt_training_image_is_skipped_with_a_warning(tmp_path, caplog):
    root = write_photos(tmp_path / "photos", n=2)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = SharpImages([root], crop_size=16, seed=0)
    with caplog.at_level(logging.WARNING, logger="swintormer.data"):
        crops = [ds[i] for i in range(30)]
    assert all(c.shape == (3, 16, 16) for c in crops)
    warnings = [r.getMessage() for r in caplog.records if "broken.png" in r.getMessage()]
    assert len(warnings) == 1  # named once, then remembered


def test_list_images_skips_hidden_and_non_images(tmp_path):
    write_photos(tmp_path, n=1)
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / ".y.png").write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["0.png"]


def test_step_sampler_shards_samples_by_rank():
    s0, s1 = StepSampler(2, 4, 3, rank=0, world=2), StepSampler(2, 4, 3, rank=1, world=2)
    assert list(s0) == [12, 13, 14, 18, 19, 20] and list(s1) == [15, 16, 17, 21, 22, 23]
    assert set(s0).isdisjoint(s1) and len(s0) == 6


@pytest.mark.parametrize("world", [1, 2])
def test_degrading_in_loader_workers_gives_the_batches_of_the_main_process(tmp_path, world):
    from torch.utils.data import DataLoader

    root = write_photos(tmp_path / "photos", n=3, size=(72, 90))
    deg = Degradation(DegradationConfig(max_radius=(0.5, 4.0)))
    margin = deg.config.margin
    crops = IndexedSamples(SharpImages([root], crop_size=32, margin=margin, seed=3))
    batches = {}
    for workers in (0, 2):
        rank = world - 1
        collate = DegradingCollate(deg, seed=3, batch=2, rank=rank, world=world)
        sampler = StepSampler(5, 8, 2, rank=rank, world=world)
        loader = DataLoader(crops, batch_size=2, sampler=sampler, num_workers=workers, collate_fn=collate)
        batches[workers] = list(loader)
    assert [b.step for b in batches[0]] == [5, 6, 7]
    for a, b in zip(batches[0], batches[2], strict=True):
        assert a.blurry.shape == (2, 3, 32, 32)
        assert torch.equal(a.sharp, b.sharp) and torch.allclose(a.blurry, b.blurry, atol=1e-6)
        assert not torch.equal(a.blurry, a.sharp)


def _dpdd(root, layout, n=2, bits=8):
    dtype = np.uint16 if bits == 16 else np.uint8
    if layout == "official":
        dirs = {
            "c": root / "train_c" / "source",
            "t": root / "train_c" / "target",
            "l": root / "train_l" / "source",
            "r": root / "train_r" / "source",
        }
    else:
        base = root / "train" / "DPDD"
        dirs = {"c": base / "inputC", "t": base / "target", "l": base / "inputL", "r": base / "inputR"}
    import cv2

    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(d / f"{i}.png"), gradient_image(40, 48, seed=i, dtype=dtype))
    return root


@pytest.mark.parametrize("layout", ["official", "restormer"])
@pytest.mark.parametrize("views", ["single", "dual"])
def test_dpdd_training_layouts(tmp_path, layout, views):
    root = _dpdd(tmp_path, layout, bits=16 if views == "dual" else 8)
    sources, target = dpdd_dirs(root, "train", views)
    assert len(sources) == (1 if views == "single" else 2)
    ds = PairedImages.from_dpdd(root, crop_size=24, views=views)
    sample = ds[0]
    assert sample.source.shape == (3 * len(sources), 24, 24) and sample.target.shape == (3, 24, 24)
    if views == "dual":  # 16-bit data keeps its precision
        assert len(torch.unique(sample.target)) > 256 or sample.target.max() <= 1


def test_paired_folder(tmp_path):
    write_photos(tmp_path / "pairs" / "source")
    write_photos(tmp_path / "pairs" / "target")
    ds = PairedImages.from_folder(tmp_path / "pairs", crop_size=32)
    s = ds[3]
    assert s.source.shape == s.target.shape == (3, 32, 32)
    assert torch.equal(s.source, s.target)  # same images, same crop and augmentation


def test_not_a_dpdd_tree(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a DPDD"):
        dpdd_dirs(tmp_path, "train", "single")
