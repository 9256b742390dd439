"""The shipped default model: installed, loadable offline, and it really deblurs."""

from pathlib import Path

import numpy as np
import torch

from swintormer_cli.data.degradation import Degradation, DegradationConfig
from swintormer_cli.evaluation.metrics import psnr
from swintormer_cli.inference import DeblurPipeline
from swintormer_cli.training.config import load_config, recipe_configs
from swintormer_cli.weights import Registry, resolve_estimator, resolve_model

from .helpers import gradient_image

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_models_are_embedded_and_verified():
    registry = Registry.load()
    assert registry.default in registry.models
    assert resolve_model().name == registry.default
    for name, entry in registry.models.items():
        if entry.kind == "blur-estimator":
            assert resolve_estimator(name).record["steps"] > 0
            continue
        resolved = resolve_model(name)
        assert resolved.origin == "embedded" and resolved.sha256 == entry.sha256
    # The default model chooses its scales with a shipped estimator.
    assert resolve_model().load().estimator is not None


def test_the_default_model_names_the_recipe_that_reproduces_it():
    # The registry, the model card and benchmarks/speed.py all read the one recipe the registry names: a script of
    # this checkout whose legs train the default's network with its prior, the last of them the run exported.
    entry = Registry.load().get(None)
    legs = [load_config(path) for path in recipe_configs(entry.recipe, ROOT)]
    assert all((leg.model.preset, leg.prior.kind) == (entry.preset, entry.prior) for leg in legs)
    assert legs[-1].name == entry.training["run"]
    card = (ROOT / "weights" / entry.card).read_text()
    assert f"recipe: `sh {entry.recipe}`" in card
    if entry.recipe.endswith(".sh"):
        assert f"--recipe {entry.recipe}" in (ROOT / entry.recipe).read_text()  # a re-export says it again


def test_the_default_model_improves_psnr_on_a_blurred_image():
    bundle = resolve_model().load()
    pipe = DeblurPipeline.from_bundle(bundle, device="cpu", seed=0)
    # A sharp synthetic scene with edges at many orientations and scales, blurred with the benchmark's recipe.
    h, w = 160, 224
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rings = 0.5 + 0.5 * np.sin(np.hypot(y - 70, x - 100) / 3.0)
    img = gradient_image(h, w, seed=4).astype(np.float32) / 255
    img[..., 0] = np.where((x // 16 + y // 16) % 2 == 0, img[..., 0], rings)
    img[30:60, 140:200] = [0.9, 0.2, 0.1]
    sharp = torch.from_numpy(np.round(img * 255) / 255).permute(2, 0, 1)[None]
    cfg = DegradationConfig.defocus_v1()
    cfg.max_radius = (3.0, 3.0)
    blurry = Degradation(cfg)(sharp, torch.Generator().manual_seed(0)).blurry[0]
    restored = pipe.restore(blurry)
    before = psnr(blurry.permute(1, 2, 0).numpy(), sharp[0].permute(1, 2, 0).numpy())
    after = psnr(restored.permute(1, 2, 0).numpy(), sharp[0].permute(1, 2, 0).numpy())
    # Measured: 23.07 -> 25.33 dB with tiny-channel-latent (25.23 after its first leg alone, 24.41 with tiny-latent,
    # and 24.13, 23.89, 23.61, 23.35 and 23.23 with the five defaults before it); its network re-initialised
    # scores 16.2 dB (tiny-latent's 13.3).
    assert after > before + 0.1, (before, after)
