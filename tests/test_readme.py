"""The README's Quickstart and CI stay in step."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1].strip()
    readme = (ROOT / "README.md").read_text()
    assert "pytest" in ci and f"    {ci}\n" in readme


def test_quickstart_deblurs_the_bundled_example():
    readme = (ROOT / "README.md").read_text()
    assert "swintormer deblur examples/citrus-blurry.png" in readme
    assert (ROOT / "examples" / "citrus-blurry.png").is_file()


def test_ci_installs_with_the_constraints_file_pinning_every_dependency():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.count("-c constraints.txt") == 2
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    names = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", d).group()).lower() for d in wanted}
    assert names - {"torch"} <= set(pins), names - set(pins)
    assert "torch" not in pins and "swintormer" not in pins
