"""The ldm-sr prior's whole-image maps and their cache (swintormer_cli/prior/cache.py): made once, reused while
their inputs stay the same, made again when an image, the settings or the weights change."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from swintormer_cli.data.datasets import PairedImages
from swintormer_cli.inference import DeblurPipeline
from swintormer_cli.models import Swintormer
from swintormer_cli.prior import LDMSuperResolutionPrior
from swintormer_cli.prior.cache import CACHE_DIR, MapItem, MapSettings, PriorMapCache, read_map

from .helpers import gradient_image, tiny_config, tiny_ldm


@pytest.fixture(scope="module")
def ldm_folder(tmp_path_factory):
    return tiny_ldm(tmp_path_factory.mktemp("ldm"))


@pytest.fixture
def prior(ldm_folder):
    return LDMSuperResolutionPrior.from_pretrained(ldm_folder)


def _pairs(root, n=2, size=(24, 30)):
    for i in range(n):
        for sub in ("source", "target"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(gradient_image(*size, seed=i + (sub == "target"))).save(root / sub / f"{i}.png")
    return [MapItem(root, (root / "source" / f"{i}.png",), 8) for i in range(n)]


def _settings(**kw):
    return MapSettings(**{"steps": 3, **kw})


def test_maps_are_made_once_then_reused(tmp_path, prior):
    items = _pairs(tmp_path)
    cache = PriorMapCache(prior, _settings())
    paths, report = cache.ensure_all(items)
    assert (report.computed, report.reused) == (2, 0)
    assert all(p.is_file() and CACHE_DIR in p.parts and p.name == f"{i}.png.safetensors" for i, p in enumerate(paths))
    stamps = [p.stat().st_mtime_ns for p in paths]
    again, report = PriorMapCache(prior, _settings()).ensure_all(items)
    assert (report.computed, report.reused) == (0, 2) and again == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps  # not written again
    # What is stored: the map at the image's resolution, and the key it was made under.
    with safe_open(str(paths[0]), framework="pt") as f:
        key = json.loads(f.metadata()["key"])
        assert f.get_tensor("prior").dtype == torch.float16
    assert read_map(paths[0]).shape == (3, 24, 30)
    assert key["inputs"][0]["path"] == "source/0.png" and key["bits"] == 8
    assert key["settings"]["steps"] == 3 and key["settings"]["eta"] == 1.0
    assert key["settings"]["sha256"] == prior.digest and key["settings"]["revision"] is None


def test_a_changed_image_is_made_again_and_only_it(tmp_path, prior, caplog):
    items = _pairs(tmp_path)
    cache = PriorMapCache(prior, _settings())
    paths, _ = cache.ensure_all(items)
    before = [read_map(p) for p in paths]
    Image.fromarray(gradient_image(24, 30, seed=7)).save(items[1].sources[0])
    with caplog.at_level("INFO", logger="swintormer.prior"):
        again, report = cache.ensure_all(items)
    assert (report.computed, report.reused) == (1, 1) and again == paths
    assert "its image changed" in caplog.text
    assert torch.equal(read_map(again[0]), before[0]) and not torch.equal(read_map(again[1]), before[1])


@pytest.mark.parametrize(
    "change",
    ["steps", "eta", "seed", "dtype", "revision", "weights"],
)
def test_other_settings_or_weights_make_other_maps(tmp_path, prior, ldm_folder, change):
    items = _pairs(tmp_path, n=1)
    first, _ = PriorMapCache(prior, _settings()).ensure_all(items)
    other, settings = prior, _settings()
    if change == "steps":
        settings = _settings(steps=2)
    elif change == "eta":
        settings = _settings(eta=0.0)
    elif change == "seed":
        settings = _settings(seed=1)
    elif change == "dtype":
        settings = _settings(dtype="float32")
    elif change == "revision":  # the same files, fetched at another commit
        other = LDMSuperResolutionPrior(prior.unet, prior.train_scheduler, revision="a" * 40, digest=prior.digest)
    else:  # other weights in the same folder
        copy = tiny_ldm(tmp_path / "other-ldm")
        other = LDMSuperResolutionPrior.from_pretrained(copy)
        assert other.digest != prior.digest
    paths, report = PriorMapCache(other, settings).ensure_all(items)
    assert report.computed == 1 and paths[0] != first[0] and first[0].is_file()
    # The entry is checked by its key, not by where it lies: one put where the first settings' entry belongs is
    # made again.
    cache = PriorMapCache(other, settings)
    first[0].write_bytes(paths[0].read_bytes())
    original = PriorMapCache(prior, _settings())
    assert original.lookup(items[0])[0] is None
    assert cache.lookup(items[0])[0] == paths[0]


def test_a_damaged_or_mislabelled_entry_is_made_again(tmp_path, prior):
    items = _pairs(tmp_path, n=1)
    cache = PriorMapCache(prior, _settings())
    (path,), _ = cache.ensure_all(items)
    good = read_map(path)
    path.write_bytes(path.read_bytes()[:50])  # cut short by a crash of something else
    assert "unreadable" in cache.lookup(items[0])[1]
    (path,), report = cache.ensure_all(items)
    assert report.computed == 1 and torch.equal(read_map(path), good)
    # A map of the wrong size under a right key: refused too.
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file({"prior": torch.zeros(3, 5, 5)}, str(path), metadata=meta)
    assert "record says" in cache.lookup(items[0])[1]
    assert cache.ensure_all(items)[1].computed == 1


def test_an_unreadable_image_is_named_and_skipped(tmp_path, prior, caplog):
    items = _pairs(tmp_path)
    items[0].sources[0].write_bytes(b"not an image")
    paths, report = PriorMapCache(prior, _settings()).ensure_all(items)
    assert paths[0] is None and paths[1] is not None
    assert report.failed == [str(items[0].sources[0])] and "0.png" in caplog.text


def test_the_cache_can_live_elsewhere_and_processes_share_the_work(tmp_path, prior):
    items = _pairs(tmp_path / "data", n=3)
    cache = PriorMapCache(prior, _settings(), folder=tmp_path / "maps")
    mine, report = cache.ensure_all(items, rank=1, world=2)
    assert report.computed == 1 and [p is not None for p in mine] == [False, True, False]
    assert mine[1].is_relative_to(tmp_path / "maps") and not (tmp_path / "data" / CACHE_DIR).exists()
    assert cache.ensure_all(items)[1].computed == 2  # the other process's share


def test_a_dual_pixel_map_is_conditioned_on_the_mean_of_its_views(tmp_path, prior):
    left, right = torch.rand(3, 16, 20), torch.rand(3, 16, 20)
    both = prior.sample_map(torch.cat([left, right]), steps=2, seed=4)
    assert torch.equal(both, prior.sample_map((left + right) / 2, steps=2, seed=4))
    with pytest.raises(ValueError, match="3 \\(RGB\\) or 6"):
        prior.sample_map(torch.rand(4, 16, 20), steps=2)


def test_patchwise_denoising_covers_the_whole_latent(ldm_folder):
    base = LDMSuperResolutionPrior.from_pretrained(ldm_folder)
    image = torch.rand(3, 40, 52)
    whole = base.sample_map(image, steps=2, seed=1)
    one = LDMSuperResolutionPrior(base.unet, base.train_scheduler, patch=64, patch_stride=32)
    assert torch.equal(one.sample_map(image, steps=2, seed=1), whole)  # a patch larger than the image: one call
    patched = [
        LDMSuperResolutionPrior(base.unet, base.train_scheduler, patch=16, patch_stride=8, patch_batch=b)
        for b in (1, 5)
    ]
    a, b = (p.sample_map(image, steps=2, seed=1) for p in patched)
    assert a.shape == whole.shape and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)  # patch batches change nothing but rounding
    assert not torch.allclose(a, whole)  # the patches did run (a patch sees less than the whole image)
    with pytest.raises(ValueError, match="multiple of 2"):
        LDMSuperResolutionPrior(base.unet, base.train_scheduler, patch=15)


def test_the_pipeline_cuts_each_tile_from_one_whole_image_map(prior):
    torch.manual_seed(0)
    model = Swintormer(tiny_config(prior_channels=3, prior_scale=4)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("prior_") and param.dim() == 4:
                param.normal_(0, 0.05)
    image = torch.rand(3, 50, 70)
    small = DeblurPipeline(model, prior, window=32, shift=20, device="cpu", prior_steps=2)
    # One batch size for every call: the first call of a pipeline otherwise runs one tile alone to size the
    # batches, and on some CPUs (fp32 oneDNN kernels chosen by batch size) that moves the last bits.
    small.batch_size = 4
    large = DeblurPipeline(model, prior, window=64, shift=48, device="cpu", prior_steps=2)
    prior_map = small.prior_map(image)
    assert torch.equal(prior_map, large.prior_map(image))  # the map does not depend on the tiling
    out = small.restore(image)
    assert torch.equal(small.restore(image, prior_map=prior_map), out)  # a given map is the one it would make
    other = small.restore(image, prior_map=torch.zeros_like(prior_map))
    assert (out - other).abs().max() > 1e-4  # and the map is used
    with pytest.raises(ValueError, match="prior map has shape"):
        small.restore(image, prior_map=prior_map[:, :10])


def test_training_crops_take_the_map_at_the_image_crops_window(tmp_path):
    """A 'map' that is the source image itself must come out equal to the source crop, flips and turns included."""
    root = tmp_path / "pairs"
    _pairs(root, n=2, size=(40, 52))
    data = PairedImages.from_folder(root, crop_size=16, seed=3, cache=False)
    maps = []
    for i, (sources, _) in enumerate(data.pairs):
        pixels = np.asarray(Image.open(sources[0]), dtype=np.float32) / 255
        maps.append(tmp_path / f"map{i}.safetensors")
        save_file({"prior": torch.from_numpy(pixels).permute(2, 0, 1).contiguous()}, str(maps[-1]))
    data.prior_maps = maps
    for index in range(12):
        sample = data[index]
        assert sample.prior.shape == (3, 16, 16)
        torch.testing.assert_close(sample.prior, sample.source)
    data.cache = True  # whole maps kept in memory: the same crops
    torch.testing.assert_close(data[5].prior, data[5].source)
