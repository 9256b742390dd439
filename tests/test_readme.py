"""The README's Quickstart and CI stay in step."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1].strip()
    readme = (ROOT / "README.md").read_text()
    assert "pytest" in ci and f"    {ci}\n" in readme


def test_quickstart_deblurs_the_bundled_example():
    readme = (ROOT / "README.md").read_text()
    assert "swintormer deblur examples/citrus-blurry.png" in readme
    assert (ROOT / "examples" / "citrus-blurry.png").is_file()
