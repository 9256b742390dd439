import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from swintormer_cli.cli import app
from swintormer_cli.inference import DeblurPipeline, ModelDefaults
from swintormer_cli.training.config import load_config
from swintormer_cli.training.trainer import Trainer, learning_rate
from swintormer_cli.weights import Registry, resolve_model

from .helpers import write_photos

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny-cpu.yaml"


def _overrides(tmp_path, out, steps=20, every=5):
    photos = write_photos(tmp_path / "photos", n=3, size=(72, 90))
    val = tmp_path / "val"
    write_photos(val / "source", n=1, size=(40, 48))
    write_photos(val / "target", n=1, size=(40, 48))
    return [
        f"output_dir={out}",
        f"max_steps={steps}",
        f"data.roots=[{photos}]",
        "data.crop_size=32",
        "data.workers=0",
        "batch_size=2",
        "threads=1",
        f"checkpoint_every={every}",
        "log_every=2",
        f"validation.sets=[{val}]",
        f"validation.every={every}",
        "validation.window=32",
        "optim.warmup_steps=2",
        "model.overrides={dim: 8, encoder_blocks: [1, 1, 1], latent_blocks: 1, decoder_blocks: [1, 1, 1], "
        "refinement_blocks: 1, heads: [1, 1, 2, 2], window_size: 4}",
        "prior.config={cond_channels: 8, encoder_width: 8, encoder_blocks: 1, denoiser_channels: [8]}",
        "prior.train_sample_steps=2",
        "degradation.max_radius=[0.5, 4.0]",
    ]


def test_train_tiny_cpu_config_completes(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--config", str(CONFIG), "--no-progress"]
    for o in [*_overrides(tmp_path, out), "validation.shift=24", "validation.prior_steps=3"]:
        args += ["--set", o]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "config.yaml").is_file()
    for name in ("model.safetensors", "ema.safetensors", "state.pt"):
        assert (out / "checkpoints" / "last" / name).is_file()
    assert (out / "checkpoints" / "best" / "ema.safetensors").is_file()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert any('"validation"' in line for line in lines) and any('"stage": "joint"' in line for line in lines)
    # The restorer stage logs how much the prior's target latent varies; a healthy one does.
    spreads = [r["latent_spread"] for r in map(json.loads, lines) if r.get("stage") == "restorer" and "loss" in r]
    assert spreads and min(spreads) > 0.01
    # Export it as a registered model and load it back through the registry.
    folder = tmp_path / "weights"
    result = CliRunner().invoke(
        app,
        ["weights", "export", str(out), "mini", "--folder", str(folder), "--default", "--description", "a mini model"],
    )
    assert result.exit_code == 0, result.output
    bundle = resolve_model(registry=Registry.load(folder)).load()
    assert bundle.prior is not None and bundle.trained_window == 32
    # It names the config that trained it, as its recipe.
    assert bundle.training["config"] == str(CONFIG) == Registry.load(folder).get("mini").recipe
    assert f"- recipe: `swintormer train --config {CONFIG} --resume auto`" in (folder / "mini.md").read_text()
    # What it was validated with is what it runs with by default.
    assert bundle.inference_defaults == ModelDefaults(window=32, shift=24, prior_steps=3)
    pipe = DeblurPipeline.from_bundle(bundle)
    assert (pipe.settings.window, pipe.settings.shift, pipe.settings.prior_steps) == (32, 24, 3)
    tensors = load_file(str(folder / "mini.safetensors"))
    assert not any(k.startswith("prior.target_encoder.") for k in tensors)
    card = folder / "mini.md"
    # Re-exporting keeps what was written into the card by hand and renews the checksum and training record.
    card.write_text(
        card.read_text().replace("## Training record", "## Scores\n\nmeasured by hand\n\n## Training record")
    )
    result = CliRunner().invoke(
        app, ["weights", "export", str(out), "mini", "--folder", str(folder), "--which", "best"]
    )
    assert result.exit_code == 0, result.output
    text = card.read_text()
    sha = Registry.load(folder).get("mini").sha256
    assert Registry.load(folder).get("mini").description == "a mini model"  # kept when not given again
    assert "measured by hand" in text and f"- sha256: `{sha}`" in text and text.count("## Training record") == 1
    assert '"checkpoint": ' in text and "best" in text.split("## Training record")[1]


def test_a_constant_target_latent_is_logged_and_warned_about_once(tmp_path, caplog):
    out = tmp_path / "run"
    overrides = [
        *_overrides(tmp_path, out, steps=6, every=6),
        "stage=restorer",
        "validation.sets=[]",
        "prior.config={cond_channels: 8, encoder_width: 8, encoder_blocks: 1, denoiser_channels: [8], "
        "target_norm: tanh}",
    ]
    trainer = Trainer(load_config(CONFIG, overrides), progress=False)
    with torch.no_grad():
        trainer.prior.target_encoder.body[-1].bias.fill_(1e3)  # every tanh at +1, as the first long run ended
    with caplog.at_level("WARNING", logger="swintormer.train"):
        trainer.run()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    spreads = [r["latent_spread"] for r in records if "latent_spread" in r]
    assert len(spreads) == 3 and max(spreads) == 0
    assert sum("same for every image and position" in m for m in caplog.messages) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_all_three_stages_train_on_a_cuda_gpu(tmp_path):
    # On a GPU the blur is made there from the loaded crops, and every draw comes from a CUDA generator: the
    # first H200 run failed on both (a bare "cuda" generator against cuda:0 images, the prior's draws on the CPU).
    out = tmp_path / "run"
    overrides = [o for o in _overrides(tmp_path, out, steps=16, every=16) if not o.startswith("validation.sets")]
    cfg = load_config(CONFIG, [*overrides, "device=cuda", "validation.sets=[]"])
    Trainer(cfg).run()
    stages = [json.loads(line).get("stage") for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"restorer", "prior", "joint"} <= set(stages)
    assert (out / "checkpoints" / "last" / "state.pt").is_file()


def test_every_zero_means_only_at_the_last_step(tmp_path):
    out = tmp_path / "run"
    overrides = [o for o in _overrides(tmp_path, out, steps=4, every=0) if not o.startswith("log_every")]
    cfg = load_config(CONFIG, [*overrides, "log_every=0", "prior.kind=none", "stage=restorer"])
    from swintormer_cli.training.trainer import train

    train(cfg, progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [4]
    assert [r["step"] for r in records if "validation" in r] == [4]
    assert torch.load(out / "checkpoints" / "last" / "state.pt", weights_only=True)["step"] == 4
    with pytest.raises(ValueError, match="validation.every must be 0"):
        load_config(CONFIG, ["validation.every=-1"])


def test_a_config_can_start_from_another_one(tmp_path):
    (tmp_path / "legs").mkdir()
    (tmp_path / "legs" / "first.yaml").write_text(
        "name: first\nmax_steps: 50\ndegradation: {recipe: lens, disk_fraction: 0.5}\noptim: {lr: 1.0e-3}\n"
    )
    second = tmp_path / "legs" / "second.yaml"
    second.write_text("base: first.yaml\nname: second\ndegradation: {disk_fraction: 0.7}\n")
    third = tmp_path / "third.yaml"
    third.write_text("base: legs/second.yaml\noptim: {ema: 0.99}\n")
    cfg = load_config(third, ["seed=9"])
    assert (cfg.name, cfg.max_steps, cfg.seed) == ("second", 50, 9)
    assert cfg.degradation == {"recipe": "lens", "disk_fraction": 0.7}  # mappings merge key by key
    assert (cfg.optim.lr, cfg.optim.ema) == (1.0e-3, 0.99)
    (tmp_path / "legs" / "first.yaml").write_text("base: ../third.yaml\n")
    with pytest.raises(ValueError, match="leads back to itself"):
        load_config(third)
    second.write_text("base: missing.yaml\n")
    with pytest.raises(FileNotFoundError, match="missing.yaml: config file not found"):
        load_config(third)


def test_learning_rate_warms_up_then_decays_per_stage(tmp_path):
    cfg = load_config(CONFIG, ["max_steps=800", "optim.warmup_steps=10"])
    first, end = cfg.stage_bounds("restorer")
    assert (first, end) == (0, 600) and cfg.stage_at(600) == "prior" and cfg.stage_at(799) == "joint"
    assert learning_rate(cfg, 0) < learning_rate(cfg, 9) == pytest.approx(cfg.optim.lr)
    assert learning_rate(cfg, 599) == pytest.approx(cfg.optim.min_lr, rel=0.05)
    assert learning_rate(cfg, 600) < learning_rate(cfg, 609)


def test_a_short_stage_gets_a_short_warm_up_and_its_decay():
    cfg = load_config(CONFIG, ["max_steps=800", "optim.warmup_steps=200"])
    first, end = cfg.stage_bounds("prior")
    assert (first, end) == (600, 700)
    assert learning_rate(cfg, first + 24) == pytest.approx(cfg.optim.lr)  # warm-up capped at a quarter
    assert learning_rate(cfg, end - 1) == pytest.approx(cfg.optim.min_lr, rel=0.1)
    long = load_config(CONFIG, ["max_steps=8000", "optim.warmup_steps=200"])
    assert learning_rate(long, 198) < learning_rate(long, 199) == pytest.approx(long.optim.lr)  # kept in full


def test_the_learning_rate_can_hold_before_its_cosine():
    cfg = load_config(CONFIG, ["max_steps=1000", "stage=restorer", "optim.warmup_steps=0", "optim.hold_steps=200"])
    assert learning_rate(cfg, 0) == learning_rate(cfg, 199) == cfg.optim.lr  # no warm-up, then held
    assert learning_rate(cfg, 200) == pytest.approx(cfg.optim.lr) and learning_rate(cfg, 201) < cfg.optim.lr
    assert learning_rate(cfg, 600) == pytest.approx((cfg.optim.lr + cfg.optim.min_lr) / 2, rel=0.01)
    assert learning_rate(cfg, 999) == pytest.approx(cfg.optim.min_lr, rel=0.05)
    with pytest.raises(ValueError, match="hold_steps"):
        load_config(CONFIG, ["optim.hold_steps=-1"])


def test_a_new_stage_restarts_the_weight_average(tmp_path):
    cfg = load_config(CONFIG, _overrides(tmp_path, tmp_path / "run"))
    trainer = Trainer(cfg, progress=False)
    trainer._enter_stage("restorer")
    for _ in range(5):
        trainer.ema.update_parameters(trainer.networks)
    trainer._enter_stage("prior")
    with torch.no_grad():  # what the prior stage's optimisation does to the prior
        for p in trainer.prior.parameters():
            p.add_(1.0)
    trainer.ema.update_parameters(trainer.networks)
    # The average follows the new stage from its start, not mostly the untrained prior of before.
    for averaged, current in zip(trainer.ema.module.parameters(), trainer.networks.parameters(), strict=True):
        assert torch.equal(averaged, current)


def _tiny_model_file(tmp_path, name, prior_kind, **model):
    from swintormer_cli.checkpoint import save_model

    cfg = load_config(CONFIG, [*_overrides(tmp_path, tmp_path / name), f"prior.kind={prior_kind}", "stage=restorer"])
    cfg.model.overrides.update(model)
    trainer = Trainer(cfg, progress=False)
    return save_model(tmp_path / f"{name}.safetensors", trainer.model, trainer.prior), trainer


def test_fine_tuning_starts_from_the_weights_of_a_model_file(tmp_path):
    path, source = _tiny_model_file(tmp_path, "plain", "none")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = source.model(x)
    # Adding a prior to a plain model: its modulations start at zero, so the network computes the same.
    cfg = load_config(CONFIG, [*_overrides(tmp_path, tmp_path / "ft"), f"init_from={path}"])
    trainer = Trainer(cfg, progress=False)
    assert trainer.prior is not None
    with torch.no_grad():
        guide = torch.randn(1, *trainer.prior.latent_shape(32, 32))
        assert torch.equal(trainer.model(x, guide), expected)
        assert torch.equal(trainer.ema.module["restorer"](x, guide), expected)  # the average starts there too
    # The seed's random weights would compute something else.
    cfg = load_config(CONFIG, _overrides(tmp_path, tmp_path / "scratch"))
    with torch.no_grad():
        scratch = Trainer(cfg, progress=False).model(x, guide)
    assert not torch.allclose(scratch, expected)


def test_fine_tuning_refuses_a_file_of_another_network(tmp_path):
    from swintormer_cli.checkpoint import CheckpointError

    wide, _ = _tiny_model_file(tmp_path, "wide", "none", dim=16)
    cfg = load_config(CONFIG, [*_overrides(tmp_path, tmp_path / "a"), f"init_from={wide}"])
    with pytest.raises(CheckpointError, match=r"wide\.safetensors.*differs.*dim"):
        Trainer(cfg, progress=False)
    with_prior, _ = _tiny_model_file(tmp_path, "guided", "latent")
    cfg = load_config(
        CONFIG, [*_overrides(tmp_path, tmp_path / "b"), f"init_from={with_prior}", "prior.kind=none", "stage=restorer"]
    )
    with pytest.raises(CheckpointError, match="'latent' prior"):
        Trainer(cfg, progress=False)


def test_fine_tuning_an_inference_export_relearns_its_target_encoder(tmp_path):
    from swintormer_cli.checkpoint import CheckpointError, save_model

    _, source = _tiny_model_file(tmp_path, "full", "latent")
    export = save_model(tmp_path / "export.safetensors", source.model, source.prior, inference_only=True)
    # Without an encoder stage the prior and joint stages would train against a random target encoder.
    cfg = load_config(CONFIG, [*_overrides(tmp_path, tmp_path / "a"), f"init_from={export}"])
    with pytest.raises(CheckpointError, match=r"export\.safetensors.*incomplete.*encoder stage"):
        Trainer(cfg, progress=False)
    fractions = "stage_fractions={encoder: 0.5, restorer: 0.3, prior: 0.1, joint: 0.1}"
    plan = load_config(CONFIG, [*_overrides(tmp_path, tmp_path / "b", steps=10), f"init_from={export}", fractions])
    assert plan.has_stage("encoder") and plan.stage_bounds("encoder") == (0, 5) and plan.stage_at(5) == "restorer"
    assert not load_config(CONFIG).has_stage("encoder")
    cfg = load_config(CONFIG, [*_overrides(tmp_path, tmp_path / "c", steps=3), f"init_from={export}", "stage=encoder"])
    trainer = Trainer(cfg, progress=False)
    before = {k: v.clone() for k, v in trainer.networks.state_dict().items()}
    trainer.run()
    assert trainer.trainable == list(trainer.prior.target_encoder.parameters())
    after = trainer.networks.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".target_encoder." in k for k in changed)


def _train_cmd(config_args):
    return [sys.executable, "-m", "swintormer_cli", "train", "--config", str(CONFIG), "--no-progress"] + config_args


def _set_args(overrides):
    args = []
    for o in overrides:
        args += ["--set", o]
    return args


def test_resume_after_sigkill_gives_the_same_weights(tmp_path):
    steps = 12
    straight = tmp_path / "straight"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [o for o in _overrides(tmp_path, straight, steps=steps, every=1) if not o.startswith("validation.sets")]
    base.append("validation.sets=[]")
    subprocess.run(_train_cmd(_set_args(base)), check=True, env=env, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    # The interrupted run makes its blur in a loader worker, the straight one in the main process: a batch
    # must not depend on where it is made.
    args = _set_args([o.replace(str(straight), str(killed)).replace("data.workers=0", "data.workers=1") for o in base])
    proc = subprocess.Popen(_train_cmd(args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = killed / "checkpoints" / "last" / "state.pt"
    deadline = time.time() + 300
    while time.time() < deadline:
        if state.is_file() and torch.load(state, weights_only=True)["step"] >= steps // 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    reached = torch.load(state, weights_only=True)["step"]
    assert reached < steps, "the run finished before it could be killed"
    subprocess.run(_train_cmd(args + ["--resume", "auto"]), check=True, env=env, capture_output=True, timeout=600)
    for name in ("model.safetensors", "ema.safetensors"):
        a = load_file(str(straight / "checkpoints" / "last" / name))
        b = load_file(str(killed / "checkpoints" / "last" / name))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-6), (name, key)


def test_two_process_gloo_run_writes_one_checkpoint(tmp_path):
    out = tmp_path / "ddp"
    overrides = [o for o in _overrides(tmp_path, out, steps=3, every=3) if not o.startswith("validation.sets")]
    overrides.append("validation.sets=[]")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "swintormer_cli",
        "train",
        "--config",
        str(CONFIG),
        "--no-progress",
        "--set",
        "device=cpu",
        "--set",
        "threads=1",
    ]
    result = subprocess.run(
        cmd + _set_args(overrides),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # One checkpoint (``last``, a link to the hidden folder it was published as), written by one process.
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith(".")) == ["last"]
    assert len(list((out / "checkpoints").iterdir())) == 2
    assert torch.load(out / "checkpoints" / "last" / "state.pt", weights_only=True)["step"] == 3


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_committed_config_loads(path):
    from swintormer_cli.data.degradation import DegradationConfig
    from swintormer_cli.training.trainer import build_networks

    if "task: blur-estimator" in path.read_text():
        from swintormer_cli.training.blur_estimator import load_estimator_config

        cfg = load_estimator_config(path)
        cfg.degradations()
        with pytest.raises(ValueError, match="swintormer estimator train"):
            load_config(path)  # the restorer's trainer names the command that trains it
        return
    cfg = load_config(path)
    DegradationConfig.from_dict(cfg.degradation)
    if cfg.model.preset != "paper":  # building 25 M parameters takes a while; the preset has its own test
        model, prior = build_networks(cfg)
        assert (prior is None) == (cfg.prior.kind != "latent")  # ldm-sr is frozen: loaded apart, never trained
        assert bool(model.config.prior_channels) == (cfg.prior.kind != "none")
        if cfg.init_from:
            from swintormer_cli.checkpoint import init_from_file

            source = Path(cfg.init_from)
            if (ROOT / source).is_file() and not source.is_relative_to("runs"):
                # a committed model file, loaded as the trainer does (an export relearns its target encoder)
                init_from_file(model, prior, ROOT / source, relearn_target_encoder=cfg.has_stage("encoder"))
            else:  # or the output of another committed config: a chain that re-trains from scratch
                outputs = {
                    Path(load_config(other).output_dir)
                    for other in (ROOT / "configs").rglob("*.yaml")
                    if other != path and "task: blur-estimator" not in other.read_text()
                }
                assert any(source.is_relative_to(o) for o in outputs), f"{path.name}: nothing makes {source}"


def test_init_from_takes_a_path_or_a_registered_name(tmp_path):
    from swintormer_cli.training.trainer import resolve_model_file

    assert resolve_model_file("tiny-plain").resolve() == (ROOT / "weights" / "tiny-plain.safetensors").resolve()
    assert resolve_model_file(str(tmp_path / "mine.safetensors")) == tmp_path / "mine.safetensors"


class _StopAfterCheckpoint(Exception):
    pass


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_resume_is_exact_in_each_precision(tmp_path, monkeypatch, precision):
    # bf16 autocast is the fast path on CPUs with native bf16 (auto picks it there): a run stopped after a
    # checkpoint and resumed must still end with the weights of the straight run.
    def config(out):
        overrides = [o for o in _overrides(tmp_path, out, steps=6, every=3) if not o.startswith("validation.sets")]
        return load_config(CONFIG, overrides + ["validation.sets=[]", f"precision={precision}"])

    straight, split = tmp_path / "straight", tmp_path / "split"
    Trainer(config(straight), progress=False).run()

    original_save = Trainer.save

    def save_then_stop(self, name="last"):
        original_save(self, name)
        raise _StopAfterCheckpoint

    monkeypatch.setattr(Trainer, "save", save_then_stop)
    stopped = Trainer(config(split), progress=False)
    with pytest.raises(_StopAfterCheckpoint):
        stopped.run()
    assert stopped.step == 3
    monkeypatch.setattr(Trainer, "save", original_save)
    Trainer(config(split), resume="auto", progress=False).run()
    for name in ("model.safetensors", "ema.safetensors"):
        a = load_file(str(straight / "checkpoints" / "last" / name))
        b = load_file(str(split / "checkpoints" / "last" / name))
        assert a.keys() == b.keys()
        worst = max(float((a[k] - b[k]).abs().max()) for k in a)
        assert worst <= 1e-6, (name, worst)


class _Killed(BaseException):
    """The process dies here: nothing after this instant happens (no clean-up handler runs either)."""


def _die_at_change(monkeypatch, k: int) -> None:
    """Make the k-th change to the file system (a rename, a link, a removal) the instant of a SIGKILL: that
    change and every later one raise ``_Killed`` instead of happening."""
    import shutil

    count = [0]

    def dying(fn):
        def change(*args, **kwargs):
            count[0] += 1
            if count[0] >= k:
                raise _Killed
            return fn(*args, **kwargs)

        return change

    for module, name in [(os, n) for n in ("replace", "rename", "symlink", "unlink", "remove", "rmdir")] + [
        (shutil, "rmtree")
    ]:
        monkeypatch.setattr(module, name, dying(getattr(module, name)))


def test_a_kill_at_any_instant_of_a_checkpoint_save_leaves_a_complete_last(tmp_path, monkeypatch):
    from swintormer_cli.checkpoint import load_model

    out = tmp_path / "run"
    cfg = load_config(CONFIG, [*_overrides(tmp_path, out), "prior.kind=none", "stage=restorer"])
    trainer = Trainer(cfg, progress=False)
    last = out / "checkpoints" / "last"
    trainer.step = 1
    trainer.save("last")
    for k in range(1, 100):
        before = torch.load(last / "state.pt", weights_only=True)["step"]
        trainer.step = before + 1
        with monkeypatch.context() as m:
            _die_at_change(m, k)
            try:
                trainer.save("last")
                finished = True
            except _Killed:
                finished = False
        # What the next process finds: a complete checkpoint, the old one or the new one.
        step = torch.load(last / "state.pt", weights_only=True)["step"]
        assert step in (before, before + 1), k
        assert step == before + 1 or not finished
        for name in ("model.safetensors", "ema.safetensors"):
            assert load_model(last / name).training["step"] == step, (k, name)
        assert Trainer(cfg, resume="auto", progress=False).step == step
        if finished:
            break
    assert k > 3, "a save makes several changes; the kill must have fallen between them"
    # The leftovers of the killed saves are gone after a complete one: one folder of the checkpoint's own.
    assert len([p for p in last.parent.iterdir() if p.name.startswith(".last")]) <= 1


def test_metrics_of_steps_after_the_checkpoint_are_not_logged_twice(tmp_path, monkeypatch):
    from swintormer_cli.training.trainer import train

    out = tmp_path / "run"
    overrides = [o for o in _overrides(tmp_path, out, steps=4, every=2) if not o.startswith(("log_every", "valid"))]
    cfg = load_config(CONFIG, [*overrides, "log_every=1", "prior.kind=none", "stage=restorer", "validation.sets=[]"])
    real_save = Trainer.save

    def killed_at_the_last_checkpoint(self, name="last"):
        if self.step == 4:
            raise _Killed  # killed after logging steps 3 and 4, before their checkpoint
        return real_save(self, name)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "save", killed_at_the_last_checkpoint)
        with pytest.raises(_Killed):
            train(cfg, progress=False)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "lo')  # and a line cut short by the kill
    assert torch.load(out / "checkpoints" / "last" / "state.pt", weights_only=True)["step"] == 2
    train(cfg, resume="auto", progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]


def test_the_run_config_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    from swintormer_cli.training.config import dump_config

    cfg = load_config(CONFIG, _overrides(tmp_path, tmp_path / "run"))
    path = tmp_path / "config.yaml"
    dump_config(cfg, path)
    before = path.read_text()

    def killed(*_):
        raise _Killed

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(_Killed):
        dump_config(load_config(CONFIG, [*_overrides(tmp_path, tmp_path / "run"), "max_steps=7"]), path)
    assert path.read_text() == before


def test_a_checkpoint_folder_of_the_older_layout_is_replaced_too(tmp_path):
    import shutil

    out = tmp_path / "run"
    cfg = load_config(CONFIG, [*_overrides(tmp_path, out), "prior.kind=none", "stage=restorer"])
    trainer = Trainer(cfg, progress=False)
    trainer.step = 1
    trainer.save("last")
    last = out / "checkpoints" / "last"
    # The older layout: `last` a real folder, with a leftover `.last.previous` of a save killed at its end.
    real = last.resolve()
    last.unlink()
    shutil.copytree(real, last)
    shutil.rmtree(real)
    shutil.copytree(last, last.with_name(".last.previous"))
    assert Trainer(cfg, resume="auto", progress=False).step == 1
    trainer.step = 2
    trainer.save("last")
    assert last.is_symlink() and torch.load(last / "state.pt", weights_only=True)["step"] == 2
    assert [p.name for p in last.parent.iterdir() if p.name.startswith(".")] == [os.readlink(last)]


def test_the_frequency_loss_adds_the_fft_difference_to_the_pixel_l1():
    import torch.nn.functional as F

    from swintormer_cli.training.stages import image_loss

    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 16, 16, generator=g)
    soft = F.avg_pool2d(F.pad(sharp, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert image_loss(soft, sharp) == F.l1_loss(soft, sharp)
    spectrum = torch.fft.rfft2(soft - sharp)
    expected = F.l1_loss(soft, sharp) + 0.1 * torch.view_as_real(spectrum).abs().mean()
    assert torch.allclose(image_loss(soft, sharp, 0.1), expected)
    assert image_loss(sharp, sharp, 0.1) == 0
    restored = soft.clone().requires_grad_(True)
    image_loss(restored, sharp, 0.1).backward()
    assert restored.grad is not None and restored.grad.abs().sum() > 0


def test_the_default_model_recipe_script_runs_both_legs_and_exports(tmp_path):
    # configs/tiny-channel-latent.sh with a tiny network and a few steps, in a folder of its own: the second leg
    # starts from the first's weights, the export lands in that folder's weights/, and a rerun has nothing to do.
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    # Each leg writes where its config says (runs/<name>), so no output_dir; 20 steps, checkpoints every 5; the
    # test's 32 px validation window needs a shift inside it (the recipe's is 240).
    overrides = [o for o in _overrides(tmp_path, None) if not o.startswith("output_dir=")] + ["validation.shift=24"]
    args = ["sh", "configs/tiny-channel-latent.sh", "--no-progress"]
    for o in overrides:
        args += ["--set", o]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for _ in range(2):
        result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "nothing to do" in result.stderr
    registry = Registry.load(tmp_path / "weights")
    entry = registry.get(None)
    assert registry.default == entry.name == "tiny-channel-latent"
    assert entry.recipe == "configs/tiny-channel-latent.sh"
    assert (entry.training["step"], entry.training["stage"]) == (20, "joint")
    first = load_file(str(tmp_path / "runs" / "tiny-channel-latent" / "checkpoints" / "last" / "ema.safetensors"))
    exported = load_file(str(tmp_path / "weights" / "tiny-channel-latent.safetensors"))
    assert any(not torch.equal(first[k], exported[k]) for k in exported)  # the second leg trained on
