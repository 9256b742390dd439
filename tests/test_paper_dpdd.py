"""The paper's own path on DPDD: its configs (configs/paper-dpdd*.yaml and the Table 6 ablations in
configs/paper-dpdd/) parse, say what the paper reports, and train a few steps on a tiny DPDD tree with a tiny
ldm-sr-shaped prior; and, end to end through the Hub at a pinned commit: prior cache -> train -> export ->
deblur and eval, single-image and dual-pixel."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from swintormer_cli.training.config import load_config
from swintormer_cli.training.trainer import learning_rate, train

from .helpers import tiny_ldm, write_dpdd

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted([ROOT / "configs" / "paper-dpdd-single.yaml", ROOT / "configs" / "paper-dpdd-dual.yaml"]) + sorted(
    (ROOT / "configs" / "paper-dpdd").glob("*.yaml")
)
# What each config says the paper reports (../shared/DESIGN.md); "not stated" where the brief has no number.
REPORTED = {
    "paper-dpdd-single": "26.18 dB",
    "paper-dpdd-dual": "27.07 dB",
    "window256-shift220": "26.84 dB",
    "window512-shift384": "26.89 dB",
    "no-prior": "0.11 dB",
    "attention-window": "not stated",
    "attention-channel": "not stated",
    "ddim-5": "not stated",
    "ddim-10": "not stated",
    "ddim-50": "not stated",
}
TINY_NET = [
    "model.overrides.dim=8",
    "model.overrides.encoder_blocks=[1, 1, 1]",
    "model.overrides.latent_blocks=1",
    "model.overrides.decoder_blocks=[1, 1, 1]",
    "model.overrides.refinement_blocks=1",
    "model.overrides.heads=[1, 1, 2, 2]",
    "model.overrides.window_size=4",
]


def tiny_run(out, dpdd, ldm, steps=2) -> list[str]:
    """What shrinks a paper config to seconds on a CPU: the tiny tree, the tiny prior, a tiny network, 2 steps."""
    return [
        *TINY_NET,
        f"output_dir={out}",
        f"max_steps={steps}",
        "batch_size=2",
        "threads=1",
        "device=cpu",
        "data.crop_size=32",
        "data.workers=0",
        f"data.roots=[{dpdd}]",
        f"validation.sets=[{dpdd}]",
        f"prior.source={ldm}",
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("paper")
    return write_dpdd(base / "DPDD"), tiny_ldm(base / "ldm")


def test_the_configs_are_the_paper_and_its_table_6():
    assert {p.stem for p in CONFIGS} == set(REPORTED)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_a_paper_config_states_the_papers_schedule_and_trains_a_few_steps(path, tiny, tmp_path):
    assert REPORTED[path.stem] in path.read_text()
    cfg = load_config(path)
    o = cfg.optim
    assert (cfg.model.preset, cfg.stage, cfg.batch_size, cfg.data.crop_size, cfg.max_steps) == (
        "paper",
        "restorer",
        9,
        256,
        852000,
    )
    assert (o.lr, o.weight_decay, o.betas, o.min_lr, o.ema, o.warmup_steps, o.hold_steps) == (
        3e-4,
        1e-4,
        (0.9, 0.99),
        1e-5,
        0.999,
        0,
        12000,
    )
    # Constant for 12000 steps, then a cosine down to 1e-5 at the last.
    assert learning_rate(cfg, 0) == learning_rate(cfg, 11999) == 3e-4
    assert learning_rate(cfg, 12000 + 420000) == pytest.approx((3e-4 + 1e-5) / 2, rel=1e-3)
    assert learning_rate(cfg, 851999) == pytest.approx(1e-5, rel=1e-3)
    assert (cfg.data.kind, cfg.data.views) == ("dpdd", "single" if path.stem.endswith("single") else "dual")
    assert (cfg.validation.kind, cfg.validation.split) == ("dpdd", "val")
    if path.stem == "no-prior":
        assert cfg.prior.kind == "none"
    else:
        m = cfg.prior.maps
        assert (cfg.prior.kind, cfg.prior.source) == ("ldm-sr", "CompVis/ldm-super-resolution-4x-openimages")
        steps = int(path.stem.split("-")[1]) if path.stem.startswith("ddim-") else 20
        assert (m.steps, m.sampler, m.eta) == (steps, "ddim", 1.0)

    # As written but shrunk: a few steps on the tiny tree, validated and checkpointed.
    dpdd, ldm = tiny
    out = tmp_path / "run"
    train(load_config(path, tiny_run(out, dpdd, ldm)), progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "validation" in r] == [2]
    with safe_open(str(out / "checkpoints" / "last" / "ema.safetensors"), framework="pt") as f:
        meta = f.metadata()
    spec, config = json.loads(meta["prior"]), json.loads(meta["swintormer_config"])
    assert config["in_views"] == (1 if cfg.data.views == "single" else 2)
    assert config["attention"] == cfg.model.overrides.get("attention", "mixed")
    if cfg.prior.kind == "ldm-sr":
        assert spec["kind"] == "ldm-sr" and spec["source"] == str(ldm) and len(spec["sha256"]) == 64
        assert json.loads(meta["training"])["prior_maps"]["steps"] == cfg.prior.maps.steps
    else:
        assert spec == {"kind": "none"}


def test_ldm_sr_training_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="degrades photos anew at every step"):
        load_config(None, ["prior.kind=ldm-sr", "data.kind=sharp"])
    with pytest.raises(ValueError, match="pretrained and frozen"):
        load_config(None, ["prior.kind=ldm-sr", "data.kind=dpdd", "stage=all"])


def test_prior_cache_wants_an_ldm_sr_config(tmp_path):
    from typer.testing import CliRunner

    from swintormer_cli.cli import app

    result = CliRunner().invoke(app, ["prior", "cache", "--config", str(ROOT / "configs" / "tiny-cpu.yaml")])
    assert result.exit_code == 2 and "only ldm-sr has per-image maps" in result.output
    missing = tmp_path / "nowhere"
    args = ["prior", "cache", "--config", str(ROOT / "configs" / "paper-dpdd-single.yaml")]
    result = CliRunner().invoke(app, [*args, "--set", f"data.roots=[{missing}]", "--set", f"prior.source={missing}"])
    assert result.exit_code == 1 and str(missing) in result.output and "Traceback" not in result.output


def test_training_reuses_the_maps_and_makes_a_changed_images_again(tiny, tmp_path, caplog):
    import cv2

    dpdd, ldm = tiny
    tree = write_dpdd(tmp_path / "DPDD", splits=("train", "val"))
    overrides = [*tiny_run(tmp_path / "a", tree, ldm), "prior.maps.steps=3", "validation.max_images=1"]
    config = ROOT / "configs" / "paper-dpdd-single.yaml"
    with caplog.at_level("INFO"):
        train(load_config(config, overrides), progress=False)
        assert "prior maps: 0 reused, 3 computed" in caplog.text  # 2 training images, 1 validation image
        caplog.clear()
        train(load_config(config, [*overrides, f"output_dir={tmp_path / 'b'}"]), progress=False)
        assert "prior maps: 3 reused, 0 computed" in caplog.text
        caplog.clear()
        image = tree / "train_c" / "source" / "scene2.png"
        cv2.imwrite(str(image), 65535 - cv2.imread(str(image), cv2.IMREAD_UNCHANGED))
        train(load_config(config, [*overrides, f"output_dir={tmp_path / 'c'}"]), progress=False)
        assert "prior maps: 2 reused, 1 computed" in caplog.text and "its image changed" in caplog.text


_E2E = r"""
import json, logging, sys
from pathlib import Path
from typer.testing import CliRunner
from swintormer_cli.cli import app

# The commands log to stderr; the runner swaps the streams of each call, so the log goes to the real one.
logging.basicConfig(stream=sys.__stderr__, level=logging.INFO, format="%(message)s")
work, dpdd, config, views = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tiny, inputs, right = json.loads(sys.argv[5]), sys.argv[6], sys.argv[7:]
runner = CliRunner()

def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    print(f"$ {' '.join(map(str, args[:2]))} -> {result.exit_code}", flush=True)
    if result.exit_code != 0:
        print(result.output, file=sys.stderr)
        raise SystemExit(result.exit_code)
    return result.output

sets = [a for o in tiny for a in ("--set", o)]
run("prior", "cache", "--config", config, *sets)
run("train", "--config", config, *sets, "--no-progress")
run("weights", "export", work / "run", "paper-tiny", "--folder", work / "weights", "--which", "last")
model = work / "weights" / "paper-tiny.safetensors"
run("deblur", inputs, "-o", work / "out", "--weights", model, *(["--right", *right] if right else []))
run("eval", "--dataset", "dpdd", "--data-root", dpdd, "--views", views, "--weights", model, "--no-lpips",
    "--json", work / "report.json")
print("DONE")
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _run(script: str, *args, env) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


_LOAD = """
import sys
from swintormer_cli.checkpoint import CheckpointError, load_model
try:
    bundle = load_model(sys.argv[1])
    print("OK", bundle.prior.source, bundle.prior.revision)
except CheckpointError as exc:
    print("ERR", exc)
"""


@pytest.mark.parametrize("views", ["single", "dual"])
def test_end_to_end_through_the_hub_at_a_pinned_commit(tmp_path, views):
    """cache -> train -> export -> deblur and eval, with the prior fetched from a (local) Hub, then loaded again
    from the Hugging Face cache alone, and refused once its cached weights are not the ones it was trained with."""
    from .hub_server import FakeHub

    repo, commit = "someone/ldm-sr-copy", "0123456789abcdef0123456789abcdef01234567"
    ldm = tiny_ldm(tmp_path / "ldm")
    # The single-image run on the official layout, the dual-pixel one on Restormer's.
    if views == "single":
        dpdd = write_dpdd(tmp_path / "DPDD")
        inputs, right = [dpdd / "test_c" / "source"], []
    else:
        dpdd = write_dpdd(tmp_path / "DPDD", layout="restormer")
        inputs, right = [dpdd / "test" / "DPDD" / "inputL"], [dpdd / "test" / "DPDD" / "inputR"]
    config = ROOT / "configs" / f"paper-dpdd-{views}.yaml"
    tiny = [
        *tiny_run(tmp_path / "run", dpdd, ldm, steps=3),
        f"prior.source={repo}",
        "prior.maps.steps=3",
        "validation.window=32",
        "validation.shift=24",
    ]
    hf_home = tmp_path / "hf"
    with FakeHub() as hub:
        for file in ldm.rglob("*"):
            if file.is_file():
                hub.add(repo, commit, file.relative_to(ldm).as_posix(), file.read_bytes())
        env = _env(HF_ENDPOINT=hub.endpoint, HF_HOME=str(hf_home))
        result = _run(_E2E, tmp_path, dpdd, config, views, json.dumps(tiny), *inputs, *right, env=env)
        requested = [r for r in hub.requests if "/resolve/" in r]
    assert result.stdout.strip().endswith("DONE"), result.stdout
    # `prior cache` made the maps; `train` found them all again (2 training and 2 validation images).
    assert "prior maps: 0 reused, 4 computed" in result.stderr and "prior maps: 4 reused, 0 computed" in result.stderr
    # The prior came from the Hub at the commit `main` pointed to, and only its three files.
    assert requested and all(f"/resolve/{commit}/" in r or "/resolve/main/" in r for r in requested)
    assert not any(r.endswith(".bin") or "vqvae" in r for r in requested)
    model = tmp_path / "weights" / "paper-tiny.safetensors"
    with safe_open(str(model), framework="pt") as f:
        spec = json.loads(f.metadata()["prior"])
    assert (spec["kind"], spec["source"], spec["revision"]) == ("ldm-sr", repo, commit) and len(spec["sha256"]) == 64
    # deblur wrote every test image; eval scored them on the protocol of the view count.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scene1.png", "scene2.png"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["dataset"]["views"] == (1 if views == "single" else 2)
    assert report["dataset"]["bits"] == (8 if views == "single" else 16)
    assert report["model"]["prior"] == "ldm-sr" and report["model"]["training"]["prior_maps"]["steps"] == 3
    assert report["rows"][1]["setting"]["prior_steps"] == 3  # the steps of its training maps, by default
    assert len(report["rows"][1]["images"]) == 2 and report["rows"][1]["averages"]["all"]["psnr"] > 10

    # Offline, from the Hugging Face cache alone; then with the cached weights altered: refused, by sha256.
    offline = _env(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    assert _run(_LOAD, model, env=offline).stdout.split() == ["OK", repo, commit]
    blob = next(p for p in (hf_home / "hub").rglob("diffusion_pytorch_model.safetensors")).resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    line = _run(_LOAD, model, env=offline).stdout.strip()
    assert line.startswith("ERR") and "sha256" in line and "refusing a different prior" in line


def test_a_map_that_no_longer_fits_its_image_stops_the_run(tiny, tmp_path):
    """A map file replaced after the cache checked it, by one of another size, stops the run, naming it."""
    from swintormer_cli.training.trainer import Trainer

    dpdd, ldm = tiny
    tree = write_dpdd(tmp_path / "DPDD", splits=("train",), n=1)
    cfg = load_config(
        ROOT / "configs" / "paper-dpdd-single.yaml",
        [*tiny_run(tmp_path / "run", tree, ldm), "prior.maps.steps=2", "validation.sets=[]", "data.cache=true"],
    )
    trainer = Trainer(cfg, progress=False)
    loader = trainer._loader(0)
    (path,) = trainer.maps.train
    from safetensors.torch import save_file

    save_file({"prior": torch.zeros(3, 8, 8)}, str(path))  # replaced behind the cache's back, after its check
    with pytest.raises(RuntimeError, match="does not match the size"):
        next(iter(loader))
