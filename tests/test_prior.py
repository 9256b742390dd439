import subprocess
import sys

import pytest
import torch
from diffusers import DDPMScheduler

from swintormer_cli.checkpoint import CheckpointError, load_model, load_restorer, save_model
from swintormer_cli.inference import DeblurPipeline
from swintormer_cli.models import Swintormer
from swintormer_cli.prior import LDMSuperResolutionPrior, make_sampler, noise_draws
from swintormer_cli.prior.base import ddpm_step
from swintormer_cli.training.stages import joint_loss, prior_loss, restorer_loss, set_trainable

from .helpers import tiny_config, tiny_ldm, tiny_model, tiny_prior


def _count_calls(module):
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_ddim_with_eta_zero_is_deterministic():
    prior = tiny_prior().eval()
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        a = prior(x, steps=5, generator=torch.Generator().manual_seed(3))
        b = prior(x, steps=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert noise_draws(5, "ddim", 0.0) == 1


@pytest.mark.parametrize("sampler,steps", [("ddim", 7), ("ddpm", 5), ("ddim", 1)])
def test_samplers_call_the_denoiser_once_per_step(sampler, steps):
    prior = tiny_prior().eval()
    calls = _count_calls(prior.denoiser)
    with torch.no_grad():
        prior(torch.rand(1, 3, 32, 32), steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert len(calls) == steps


def test_ddpm_step_with_given_noise_equals_diffusers_step():
    prior = tiny_prior()
    for prediction in ("sample", "epsilon"):
        config = {**prior.train_scheduler.config, "prediction_type": prediction}
        scheduler = make_sampler(DDPMScheduler.from_config(config), "ddpm", 10)
        sample = torch.randn(2, 4, 5, 6)
        output = torch.randn(2, 4, 5, 6) * 0.5
        for t in scheduler.timesteps.tolist():
            expected = scheduler.step(output, t, sample, generator=torch.Generator().manual_seed(t)).prev_sample
            noise = torch.randn(sample.shape, generator=torch.Generator().manual_seed(t))
            assert torch.allclose(ddpm_step(scheduler, output, t, sample, noise), expected, atol=1e-6)


def test_same_seed_same_image_across_memory_budgets_and_batch_sizes():
    model, prior = tiny_model(prior=True)
    x = torch.rand(3, 80, 100)
    results = []
    for batch in (1, 4):
        for sampler, eta in (("ddim", 0.0), ("ddim", 0.5), ("ddpm", 0.0)):
            pipe = DeblurPipeline(
                model,
                prior,
                window=32,
                shift=24,
                device="cpu",
                precision="fp32",
                seed=11,
                prior_steps=4,
                sampler=sampler,
                eta=eta,
            )
            pipe.batch_size = batch
            results.append((batch, sampler, eta, pipe.restore(x)))
    by_setting = {}
    for _batch, sampler, eta, out in results:
        by_setting.setdefault((sampler, eta), []).append(out)
    for outs in by_setting.values():
        assert torch.allclose(outs[0], outs[1], atol=1e-5)
    # The same seed and settings again: bit for bit.
    again = DeblurPipeline(model, prior, window=32, shift=24, device="cpu", precision="fp32", seed=11, prior_steps=4)
    again.batch_size = 1
    assert torch.equal(again.restore(x), results[0][3])


def test_different_seeds_give_different_priors_and_images():
    model, prior = tiny_model(prior=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = prior(x, steps=4, generator=torch.Generator().manual_seed(1))
        b = prior(x, steps=4, generator=torch.Generator().manual_seed(2))
    assert (a - b).abs().max() > 1e-3
    outs = [DeblurPipeline(model, prior, window=32, device="cpu", seed=s, prior_steps=4).restore(x[0]) for s in (1, 2)]
    assert (outs[0] - outs[1]).abs().max() > 1e-5


@pytest.mark.parametrize("size", [(17, 33), (45, 71)])
def test_odd_sizes_work_with_the_prior_on(size):
    model, prior = tiny_model(prior=True)
    x = torch.rand(3, *size)
    out = DeblurPipeline(model, prior, window=32, shift=24, device="cpu", prior_steps=3).restore(x)
    assert out.shape == (3, *size) and torch.isfinite(out).all()


def test_ldm_sr_prior_runs_end_to_end_from_a_saved_model(tmp_path):
    tiny_ldm(tmp_path)
    prior = LDMSuperResolutionPrior.from_pretrained(tmp_path)
    assert prior.channels == 3 and prior.scale == 1
    calls = _count_calls(prior.unet)
    with torch.no_grad():
        z = prior(torch.rand(1, 3, 20, 30), steps=3, eta=1.0, generator=torch.Generator().manual_seed(0))
    assert z.shape == (1, 3, 20, 30) and len(calls) == 3
    assert not any(p.requires_grad for p in prior.parameters())
    # A Swintormer fused with it, saved and loaded through the model file, through the pipeline.
    model = Swintormer(tiny_config(prior_channels=3, prior_scale=2))
    path = save_model(tmp_path / "m.safetensors", model, prior)
    bundle = load_model(path)
    assert bundle.prior_kind == "ldm-sr" and bundle.prior.source == str(tmp_path)
    out = DeblurPipeline.from_bundle(bundle, window=32, device="cpu", prior_steps=2, eta=1.0).restore(
        torch.rand(3, 40, 50)
    )
    assert out.shape == (3, 40, 50) and torch.isfinite(out).all()


def test_a_prior_checkpoint_on_a_network_without_prior_is_refused(tmp_path):
    model, prior = tiny_model(prior=True)
    path = save_model(tmp_path / "p.safetensors", model, prior)
    state = {
        k[len("restorer.") :]: v
        for k, v in __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(path)).items()
        if k.startswith("restorer.")
    }
    with pytest.raises(CheckpointError, match="trained with a prior"):
        load_restorer(Swintormer(tiny_config()), state, str(path))
    # load_model itself pairs them, so the same file loads fine.
    assert load_model(path).prior is not None


def _batch():
    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32, generator=g)
    blurry = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2, count_include_pad=False)
    return blurry, sharp


@pytest.mark.parametrize("target_norm", ["l2", "tanh"])
def test_a_target_encoder_grown_large_still_learns_only_with_the_l2_bound(target_norm):
    # What killed a from-scratch run's prior: the encoder's output grew into the hundreds, tanh stood at 1
    # everywhere and no gradient came back. The l2 bound is blind to that size and keeps passing one.
    torch.manual_seed(0)
    prior = tiny_prior(target_norm=target_norm)
    blurry, sharp = _batch()
    with torch.no_grad():
        prior.target_encoder.body[-1].weight.mul_(1e4)
        prior.target_encoder.body[-1].bias.fill_(1e3)
    latent = prior.target_latent(sharp, blurry)
    assert latent.abs().max() <= 1
    (latent * torch.randn_like(latent)).sum().backward()
    grad = prior.target_encoder.body[-1].weight.grad.abs().sum()
    if target_norm == "l2":
        assert torch.allclose(latent.norm(dim=1), torch.ones(()))
        assert grad > 0
    else:
        assert grad == 0


def test_a_model_file_from_before_target_norm_loads_its_tanh_encoder(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    prior = tiny_prior(target_norm="tanh")
    model = Swintormer(tiny_config(prior_channels=prior.channels, prior_scale=prior.scale))
    path = save_model(tmp_path / "m.safetensors", model, prior)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    spec = json.loads(meta["prior"])
    del spec["config"]["target_norm"]  # as files written before the setting existed
    save_file(load_file(str(path)), str(path), metadata={**meta, "prior": json.dumps(spec)})
    loaded = load_model(path).prior
    assert loaded.config.target_norm == "tanh"
    blurry, sharp = _batch()
    with torch.no_grad():
        assert torch.equal(loaded.target_latent(sharp, blurry), prior.target_latent(sharp, blurry))


def test_an_unknown_target_norm_is_refused():
    with pytest.raises(ValueError, match="target_norm"):
        tiny_prior(target_norm="clamp")


@pytest.mark.parametrize("stage", ["restorer", "prior", "joint"])
def test_one_step_of_each_stage_reduces_its_loss(stage):
    torch.manual_seed(0)
    model, prior = tiny_model(prior=True)
    model.train()
    prior.train()
    blurry, sharp = _batch()
    params = set_trainable(stage, model, prior)
    opt = torch.optim.Adam(params, lr=1e-3)

    def loss_fn():
        g = torch.Generator().manual_seed(5)  # the same timesteps and noise before and after the step
        if stage == "restorer":
            return restorer_loss(model, prior, blurry, sharp)
        if stage == "prior":
            return prior_loss(prior, blurry, sharp, g, sample_steps=2)
        return joint_loss(model, prior, blurry, sharp, g, sample_steps=2)

    before = loss_fn()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss_fn()
    assert after < before
    frozen = {"restorer": prior.denoiser, "prior": model, "joint": prior.target_encoder}[stage]
    assert not any(p.requires_grad for p in frozen.parameters())


def test_ldm_sr_never_loads_pickle_weights(tmp_path):
    tiny_ldm(tmp_path, safe_serialization=False)  # unet/diffusion_pytorch_model.bin only
    assert not list((tmp_path / "unet").glob("*.safetensors"))
    with pytest.raises(OSError, match="safetensors"):
        LDMSuperResolutionPrior.from_pretrained(tmp_path)


def _with_prior_spec(path, **spec):
    """Rewrite a model file's prior record (what a file made elsewhere may say)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    meta["prior"] = json.dumps(spec)
    save_file(load_file(str(path)), str(path), metadata=meta)
    return path


@pytest.mark.parametrize("revision", [None, "main", "v1.0"])
def test_a_model_file_naming_an_unpinned_hub_prior_is_refused(tmp_path, revision):
    tiny_ldm(tmp_path)
    model = Swintormer(tiny_config(prior_channels=3, prior_scale=2))
    path = save_model(tmp_path / "m.safetensors", model, LDMSuperResolutionPrior.from_pretrained(tmp_path))
    spec = {"kind": "ldm-sr", "source": "someone/ldm-sr-copy"} | ({"revision": revision} if revision else {})
    _with_prior_spec(path, **spec)
    with pytest.raises(CheckpointError, match="pinned") as info:
        load_model(path)
    assert "\n" not in str(info.value)


_LOAD_SCRIPT = """
import sys
from swintormer_cli.checkpoint import CheckpointError, load_model
try:
    bundle = load_model(sys.argv[1])
    print("OK", bundle.prior.source, bundle.prior.revision, bundle.prior.channels)
except CheckpointError as exc:
    print("ERR", exc)
"""


def test_an_ldm_sr_prior_from_the_hub_is_fetched_at_its_pinned_commit(tmp_path):
    import os
    import subprocess
    import sys

    from .hub_server import FakeHub

    repo, commit = "someone/ldm-sr-copy", "89abcdef0123456789abcdef0123456789abcdef"
    local = tmp_path / "ldm"
    tiny_ldm(local)
    prior = LDMSuperResolutionPrior.from_pretrained(local)
    model = Swintormer(tiny_config(prior_channels=3, prior_scale=2))
    path = save_model(tmp_path / "m.safetensors", model, prior)
    _with_prior_spec(path, kind="ldm-sr", source=repo, revision=commit)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    with FakeHub() as hub:
        for file in local.rglob("*"):
            if file.is_file():
                hub.add(repo, commit, file.relative_to(local).as_posix(), file.read_bytes())
        hub.add(repo, "f" * 40, "unet/config.json", b"{}")  # main moved on since: never fetched
        env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf"))
        out = subprocess.run(
            [sys.executable, "-c", _LOAD_SCRIPT, str(path)], env=env, capture_output=True, text=True, timeout=120
        )
        requested = [r for r in hub.requests if "/resolve/" in r]
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == f"OK {repo} {commit} 3", out.stdout + out.stderr
    assert requested and all(f"/resolve/{commit}/" in r for r in requested)
    assert not any(r.endswith(".bin") for r in requested)


def test_eta_defaults_to_the_priors_own(tmp_path, model_file):
    from PIL import Image
    from typer.testing import CliRunner

    from swintormer_cli.cli import app

    from .helpers import gradient_image

    tiny_ldm(tmp_path / "ldm")
    model = Swintormer(tiny_config(prior_channels=3, prior_scale=2))
    ldm_file = save_model(
        tmp_path / "ldm.safetensors", model, LDMSuperResolutionPrior.from_pretrained(tmp_path / "ldm")
    )
    assert DeblurPipeline.from_bundle(load_model(ldm_file), device="cpu").settings.eta == 1.0  # the paper's script
    assert DeblurPipeline.from_bundle(load_model(model_file), device="cpu").settings.eta == 0.0
    assert DeblurPipeline.from_bundle(load_model(ldm_file), device="cpu", eta=0.5).settings.eta == 0.5
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "a.png")
    for weights, extra, expected in (
        (ldm_file, [], "eta 1.0"),
        (model_file, [], "eta 0.0"),
        (ldm_file, ["--eta", "0.25"], "eta 0.25"),
    ):
        args = ["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--overwrite", "--window", "32"]
        result = CliRunner().invoke(app, [*args, "--weights", str(weights), "--prior-steps", "2", *extra])
        assert result.exit_code == 0, result.output
        assert expected in result.stderr, result.stderr


def test_diffusers_is_imported_only_when_a_prior_is_built(tmp_path):
    # diffusers costs seconds to import: a model without a prior must deblur without it.
    path = tmp_path / "plain.safetensors"
    save_model(path, Swintormer(tiny_config()), None)
    script = f"""
import sys, torch
from swintormer_cli.inference import DeblurPipeline
pipe = DeblurPipeline.from_pretrained(weights={str(path)!r}, precision="fp32")
pipe.restore(torch.rand(3, 40, 56))
assert "diffusers" not in sys.modules, "diffusers imported for a model without a prior"
from swintormer_cli.prior import LatentPrior, LatentPriorConfig
LatentPrior(LatentPriorConfig(cond_channels=8, encoder_width=8, encoder_blocks=1, denoiser_channels=(8,)))
assert "diffusers" in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
