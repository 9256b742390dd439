import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from swintormer_cli.cli import app

runner = CliRunner()


def test_help_lists_every_command_group():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("deblur", "eval", "train", "weights", "info", "bench"):
        assert command in result.output


def test_python_dash_m_works():
    out = subprocess.run(
        [sys.executable, "-m", "swintormer_cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "deblur" in out.stdout


def test_info_shows_parameters_and_macs():
    result = runner.invoke(app, ["info", "--preset", "tiny", "--size", "64"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "tiny" in result.output and "latent" in result.output
    assert runner.invoke(app, ["info", "--preset", "huge"]).exit_code == 2


def test_weights_list_runs():
    result = runner.invoke(app, ["weights", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0


def test_piped_tables_carry_whole_values_and_json_is_there_for_scripts():
    from swintormer_cli.weights import Registry

    registry = Registry.load()
    # Piped (not a terminal), even where COLUMNS says 80: every name and description whole, on one line each.
    piped = subprocess.run(
        [sys.executable, "-m", "swintormer_cli", "weights", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert piped.returncode == 0, piped.stderr
    for name, entry in registry.models.items():
        assert any(name in line and entry.description in line for line in piped.stdout.splitlines()), name
    listed = json.loads(runner.invoke(app, ["weights", "list", "--json"]).stdout)
    assert listed["default"] == registry.default
    assert {m["name"] for m in listed["models"]} == set(registry.models)
    assert all(m["sha256"] == registry.models[m["name"]].sha256 for m in listed["models"])
    info = json.loads(runner.invoke(app, ["info", "--preset", "tiny", "--size", "64", "--json"]).stdout)
    assert info["presets"][0]["preset"] == "tiny" and info["presets"][0]["params_m"] == 2.54


def test_bench_prints_a_table_and_json(tmp_path):
    out = tmp_path / "b.json"
    result = runner.invoke(
        app,
        ["bench", "--preset", "tiny", "--size", "64x96", "--window", "32", "--device", "cpu", "--json", str(out)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert (
        data["megapixels_per_s"] > 0 and data["height"] == 64 and data["tiles"] == 12
    )  # 3 rows x 4 columns of 32-pixel tiles 24 apart
    assert runner.invoke(app, ["bench", "--preset", "tiny", "--size", "big"]).exit_code == 2


def test_an_unexpected_error_is_one_line_unless_debug(monkeypatch, capsys):
    import pytest

    from swintormer_cli import weights
    from swintormer_cli.cli import main

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(weights.Registry, "load", broken)
    monkeypatch.setattr(sys, "argv", ["swintormer", "weights", "list"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "RuntimeError: disk on fire second line" in err and "Traceback" not in err and "--debug" in err
    monkeypatch.setattr(sys, "argv", ["swintormer", "--debug", "weights", "list"])
    with pytest.raises(RuntimeError, match="disk on fire"):
        main()


def test_shared_flags_are_offered_alike_by_every_command_that_runs_a_model():
    for command in ("deblur", "eval", "bench"):
        text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200", "TERM": "dumb"}).output
        for flag in ("--model", "--weights", "--device", "--precision", "--memory-budget", "--workers"):
            assert flag in text, (command, flag)
    for command in ("deblur", "eval"):
        text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200", "TERM": "dumb"}).output
        assert "--quiet" in text and "--debug" in text and "--seed" in text and "--eta" in text


def test_help_names_each_default_from_its_owner():
    from swintormer_cli.defaults import DEFAULT_MAX_SCALE, DEFAULT_PRIOR_STEPS, DEFAULT_WINDOW, SHIFT_RULE

    for command in ("deblur", "eval", "bench"):
        text = " ".join(runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"}).output.split())
        assert f"the model's training window, else {DEFAULT_WINDOW}" in text, command
        assert f"the model's recorded shift with its own window, else {SHIFT_RULE}" in text, command
        assert f"else {DEFAULT_PRIOR_STEPS}." in text, command
    text = " ".join(runner.invoke(app, ["deblur", "--help"], env={"COLUMNS": "400"}).output.split())
    assert f"Default: {DEFAULT_MAX_SCALE:g}." in text


def test_preview_writes_its_sheet_through_the_image_writer(tmp_path):
    from pathlib import Path

    from PIL import Image

    from .helpers import write_photos

    write_photos(tmp_path / "photos", n=2, size=(96, 96))
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"
    for name, fmt in (("sheet.png", "PNG"), ("sheet.jpg", "JPEG")):
        args = ["preview", "-c", str(config), "-o", str(tmp_path / name), "--count", "2", "--crop", "48"]
        result = runner.invoke(app, [*args, "--set", f"data.roots=[{tmp_path / 'photos'}]"])
        assert result.exit_code == 0, result.output
        assert Image.open(tmp_path / name).format == fmt  # encoded by its suffix, written atomically
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    args = ["preview", "-c", str(config), "-o", str(blocker / "s.png"), "--count", "1", "--crop", "48"]
    result = runner.invoke(app, [*args, "--set", f"data.roots=[{tmp_path / 'photos'}]"])
    assert result.exit_code == 1 and "s.png" in result.output
