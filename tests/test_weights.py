"""The registry, weight resolution, and the Hub path against a real (loopback) HTTP server.

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when it is imported, so each Hub scenario
runs in a fresh Python process with its own environment.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from swintormer_cli.weights import Registry, RegistryEntry, WeightsError, resolve_model, sha256_of

from .hub_server import FakeHub

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "swintormer-test/tiny"


def _registry(folder, model_file, sha=None, hub=True):
    entry = RegistryEntry(
        name="tiny",
        file="tiny.safetensors",
        sha256=sha or sha256_of(model_file),
        preset="tiny",
        prior="latent",
        window=64,
        hub={"repo_id": REPO, "revision": COMMIT, "filename": "tiny.safetensors"} if hub else None,
    )
    reg = Registry("tiny", {"tiny": entry}, folder)
    folder.mkdir(parents=True, exist_ok=True)
    reg.save()
    return reg


def test_weights_path_and_pickles(model_file, tmp_path):
    resolved = resolve_model(weights=model_file)
    assert resolved.origin == "file" and resolved.load().prior is not None
    resolved = resolve_model(weights=model_file.parent)  # a folder holding one file
    assert resolved.path == model_file
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"x")
    with pytest.raises(WeightsError, match="only .safetensors"):
        resolve_model(weights=pickle)
    with pytest.raises(WeightsError, match="no such"):
        resolve_model(weights=tmp_path / "missing.safetensors")


def test_embedded_file_is_checked(model_file, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "tiny.safetensors").write_bytes(model_file.read_bytes())
    reg = _registry(folder, model_file)
    assert resolve_model(registry=reg).origin == "embedded"
    bad = _registry(folder, model_file, sha="0" * 64)
    with pytest.raises(WeightsError, match="does not match"):
        resolve_model(registry=bad)


def test_no_model_installed_is_one_line(tmp_path):
    with pytest.raises(WeightsError, match="no model is installed") as info:
        resolve_model(registry=Registry(None, {}, tmp_path))
    assert "\n" not in str(info.value)
    with pytest.raises(WeightsError, match="unknown model"):
        resolve_model("nope", registry=Registry(None, {}, tmp_path))


_SCRIPT = textwrap.dedent("""
    import sys
    from swintormer_cli.weights import Registry, WeightsError, resolve_model
    try:
        r = resolve_model(registry=Registry.load(sys.argv[1]))
        print("OK", r.origin, r.path)
    except WeightsError as exc:
        print("ERR", exc)
""")


def _resolve_in_subprocess(folder, env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(folder)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith(("OK", "ERR"))]
    assert len(lines) == 1, out.stdout + out.stderr
    return lines[0]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_download_cache_offline_and_errors(model_file, tmp_path):
    folder = tmp_path / "registry"  # the registry only: the file is not embedded
    _registry(folder, model_file)
    home = tmp_path / "hf"
    data = model_file.read_bytes()
    with FakeHub() as hub:
        hub.add(REPO, COMMIT, "tiny.safetensors", data)
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home)}
        # Offline with an empty cache: one line naming the model and the variable.
        line = _resolve_in_subprocess(folder, {**env, "HF_HUB_OFFLINE": "1"})
        assert line.startswith("ERR") and "HF_HUB_OFFLINE" in line and "tiny" in line
        # First download.
        line = _resolve_in_subprocess(folder, env)
        assert line.startswith("OK hub") and str(home) in line

        def file_requests():
            return [r for r in hub.requests if "/resolve/" in r]

        assert any(r.startswith("GET") for r in file_requests())
        # Cache hit: the pinned commit is in the cache; the file is not asked for again.
        before = len(file_requests())
        assert _resolve_in_subprocess(folder, env).startswith("OK hub")
        assert len(file_requests()) == before
        # Offline with the cache filled.
        assert _resolve_in_subprocess(folder, {**env, "HF_HUB_OFFLINE": "1"}).startswith("OK hub")

    # A file whose sha256 differs from the registry is refused.
    bad_home = tmp_path / "hf-bad"
    with FakeHub() as hub:
        hub.add(REPO, COMMIT, "tiny.safetensors", data + b"tampered")
        line = _resolve_in_subprocess(folder, {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(bad_home)})
        assert line.startswith("ERR") and "does not match" in line

    # 404: the repo has no such file.
    with FakeHub() as hub:
        line = _resolve_in_subprocess(folder, {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf-404")})
        assert line.startswith("ERR") and "not found on the Hub" in line

    # Connection refused: nothing listens on the port.
    dead = f"http://127.0.0.1:{_free_port()}"
    line = _resolve_in_subprocess(folder, {"HF_ENDPOINT": dead, "HF_HOME": str(tmp_path / "hf-dead")})
    assert line.startswith("ERR") and "cannot reach the Hub" in line and dead in line


def test_registry_file_round_trip(tmp_path, model_file):
    reg = _registry(tmp_path, model_file)
    data = json.loads((tmp_path / "registry.json").read_text())
    assert data["default"] == "tiny" and data["models"]["tiny"]["hub"]["revision"] == COMMIT
    assert Registry.load(tmp_path).get(None).sha256 == reg.models["tiny"].sha256


@pytest.mark.parametrize(
    "field,value",
    [
        ("file", "../outside.safetensors"),
        ("file", "ABSOLUTE"),
        ("file", "sub/../../outside.safetensors"),
        ("file", "..\\outside.safetensors"),
        ("card", "../../card.md"),
        ("hub", {"repo_id": REPO, "revision": COMMIT, "filename": "../../outside.safetensors"}),
    ],
)
def test_registry_paths_stay_inside_their_folder(model_file, tmp_path, field, value):
    folder = tmp_path / "weights"
    _registry(folder, model_file)
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(model_file.read_bytes())
    data = json.loads((folder / "registry.json").read_text())
    data["models"]["tiny"][field] = str(outside) if value == "ABSOLUTE" else value
    (folder / "registry.json").write_text(json.dumps(data))
    with pytest.raises(WeightsError) as info:
        resolve_model(registry=Registry.load(folder))
    assert "registry.json" in str(info.value) and "\n" not in str(info.value)


def _checkpoint_folder(tmp_path, model_file):
    """A folder holding an ema.safetensors, which `weights export` takes like a training checkpoint."""
    folder = tmp_path / "run" / "checkpoints" / "last"
    folder.mkdir(parents=True)
    (folder / "ema.safetensors").write_bytes(model_file.read_bytes())
    return folder


@pytest.mark.parametrize("name", ["../evil", "ABSOLUTE", "a/b", "..", ""])
def test_export_names_cannot_leave_the_weights_folder(tmp_path, model_file, name):
    from typer.testing import CliRunner

    from swintormer_cli.cli import app

    checkpoint = _checkpoint_folder(tmp_path, model_file)
    name = str(tmp_path / "evil") if name == "ABSOLUTE" else name
    before = set(tmp_path.rglob("*"))
    folder = tmp_path / "weights"
    result = CliRunner().invoke(app, ["weights", "export", str(checkpoint), name, "--folder", str(folder)])
    assert result.exit_code == 2, result.output
    assert "model name" in result.stderr
    assert set(tmp_path.rglob("*")) == before  # nothing written anywhere


@pytest.mark.parametrize("sha", ["", "abc", None])
def test_an_entry_without_a_usable_sha256_is_refused(model_file, tmp_path, sha):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "tiny.safetensors").write_bytes(model_file.read_bytes())
    _registry(folder, model_file)
    data = json.loads((folder / "registry.json").read_text())
    if sha is None:
        del data["models"]["tiny"]["sha256"]
    else:
        data["models"]["tiny"]["sha256"] = sha
    (folder / "registry.json").write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="sha256") as info:
        resolve_model(registry=Registry.load(folder))
    assert "\n" not in str(info.value)


def test_export_without_folder_goes_to_the_user_folder_and_is_found_there(tmp_path, model_file, monkeypatch):
    from typer.testing import CliRunner

    from swintormer_cli import weights
    from swintormer_cli.cli import app

    embedded = tmp_path / "package" / "weights"  # stands for the installed package's folder
    embedded.mkdir(parents=True)
    (embedded / "tiny.safetensors").write_bytes(model_file.read_bytes())
    _registry(embedded, model_file, hub=False)
    packaged = {p.name: p.read_bytes() for p in embedded.iterdir()}
    monkeypatch.setattr(weights, "weights_dir", lambda: embedded)
    home = tmp_path / "home"
    monkeypatch.setenv("SWINTORMER_HOME", str(home))

    runner = CliRunner()
    checkpoint = _checkpoint_folder(tmp_path, model_file)
    result = runner.invoke(app, ["weights", "export", str(checkpoint), "mine", "--description", "my own"])
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_bytes() for p in embedded.iterdir()} == packaged  # the package is left alone
    assert (home / "weights" / "mine.safetensors").is_file() and (home / "weights" / "mine.md").is_file()
    registry = Registry.load()
    assert registry.default == "tiny" and set(registry.models) == {"tiny", "mine"}
    mine, tiny = resolve_model("mine"), resolve_model()
    assert (mine.origin, mine.path.parent) == ("user", home / "weights")
    assert (tiny.origin, tiny.path.parent) == ("embedded", embedded)
    listing = runner.invoke(app, ["weights", "list"], env={"COLUMNS": "300"})
    assert listing.exit_code == 0 and "user" in listing.output and "my own" in listing.output
    assert runner.invoke(app, ["weights", "verify"]).exit_code == 0
    # --default makes it the default; a model of the same name as a packaged one takes its place.
    result = runner.invoke(app, ["weights", "export", str(checkpoint), "tiny", "--default"])
    assert result.exit_code == 0, result.output
    assert resolve_model().origin == "user" and resolve_model().name == "tiny"
    assert {p.name: p.read_bytes() for p in embedded.iterdir()} == packaged


def test_a_re_export_of_the_same_run_keeps_the_recipe_its_record_does_not_name(tmp_path, model_file):
    from swintormer_cli.export import export_run

    checkpoint = _checkpoint_folder(tmp_path, model_file)  # trained before runs recorded their config
    folder = tmp_path / "weights"
    entry, _ = export_run(checkpoint, "mine", folder=folder)
    assert entry.recipe is None and "recipe" not in (folder / "registry.json").read_text()
    registry = Registry.load(folder)
    registry.models["mine"].recipe = "configs/mine.yaml"  # said by hand
    registry.save()
    entry, _ = export_run(checkpoint, "mine", folder=folder)
    assert entry.recipe == Registry.load(folder).get("mine").recipe == "configs/mine.yaml"
    registry = Registry.load(folder)
    registry.models["mine"].training["run"] = "another-run"  # what was said of another run is not this one's
    registry.save()
    entry, _ = export_run(checkpoint, "mine", folder=folder)
    assert entry.recipe is None


def _metadata(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def _rewrite_metadata(path, out, **changes):
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(out), metadata={**_metadata(path), **changes})
    return out


def _broken_model_file(model_file, tmp_path, case):
    from safetensors.torch import load_file, save_file

    path = tmp_path / f"{case}.safetensors"
    data = model_file.read_bytes()
    if case == "cut":
        path.write_bytes(data[: len(data) // 2])
    elif case == "noise":
        path.write_bytes(bytes(range(256)) * 8)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "shapes":  # tensors of other shapes than the config says (put together by hand, or a bug)
        shrunk = {k: v[..., :1].clone() if v.dim() > 1 else v for k, v in load_file(str(model_file)).items()}
        save_file(shrunk, str(path), metadata=_metadata(model_file))
    else:
        changes = {
            "prior": {"prior": '{"kind": "magic"}'},
            "prior-list": {"prior": "[1, 2]"},
            "config-key": {"swintormer_config": '{"preset": "huge"}'},
            "config-value": {"swintormer_config": '{"dim": -8}'},
        }[case]
        _rewrite_metadata(model_file, path, **changes)
    return path


@pytest.mark.parametrize(
    "case", ["cut", "noise", "empty", "prior", "prior-list", "config-key", "config-value", "shapes"]
)
def test_a_broken_model_file_is_a_one_line_error(tmp_path, model_file, case):
    from PIL import Image
    from typer.testing import CliRunner

    from swintormer_cli.cli import app

    from .helpers import gradient_image

    path = _broken_model_file(model_file, tmp_path, case)
    with pytest.raises(WeightsError) as info:
        resolve_model(weights=path).load()
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "a.png")
    result = CliRunner().invoke(app, ["deblur", str(tmp_path / "a.png"), "--weights", str(path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        '{"models": []}',
        '{"models": {"x": 3}}',
        '{"models": {"x": {"file": "x.safetensors", "window": "big"}}}',
        '{"default": 5, "models": {}}',
        b"\xff\xfe\x00garbage",
    ],
)
def test_a_broken_registry_is_a_one_line_error(tmp_path, text, monkeypatch):
    from PIL import Image
    from typer.testing import CliRunner

    from swintormer_cli.cli import app

    from .helpers import gradient_image

    Image.fromarray(gradient_image(20, 20)).save(tmp_path / "a.png")
    user = tmp_path / "home" / "weights"
    user.mkdir(parents=True)
    (user / "registry.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setenv("SWINTORMER_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsError, match="registry.json"):
        resolve_model()
    for args in (["weights", "list"], ["weights", "verify"], ["deblur", str(tmp_path / "a.png")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.count("\n") == 1 and "registry.json" in result.stderr, result.stderr
