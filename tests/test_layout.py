"""The package's layering: inference and the `deblur` command never load the training code."""

import subprocess
import sys
from pathlib import Path


def test_inference_and_deblur_do_not_import_training():
    code = (
        "import sys, swintormer_cli.cli.deblur, swintormer_cli.inference.pipeline, swintormer_cli.inference.batch;"
        "from swintormer_cli.cli.common import check_environment; check_environment();"
        "from swintormer_cli.inference.memory import default_budget; import torch; default_budget(torch.device('cpu'));"
        "print(sorted(m for m in sys.modules if m.startswith('swintormer_cli.training')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _imports(path) -> set[str]:
    """The swintormer_cli modules a file imports, at its top or inside functions, as dotted names."""
    import ast

    package = ["swintormer_cli", *path.relative_to(PACKAGE).with_suffix("").parts[:-1]]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("swintormer_cli")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif (node.module or "").startswith("swintormer_cli"):
                found.add(node.module)
    return found


PACKAGE = Path(__file__).resolve().parents[1] / "swintormer_cli"
# Each layer imports only from the layers below it; the CLI sits on top of all.
BELOW = {
    "inference": ("training", "evaluation", "cli"),
    "models": ("inference", "training", "evaluation", "cli", "prior", "data"),
    "prior": ("inference", "training", "evaluation", "cli", "data"),
    "data": ("inference", "training", "evaluation", "cli"),
    "checkpoint": ("inference", "training", "evaluation", "cli"),
    "tiling": ("inference", "training", "evaluation", "cli", "models", "prior", "data", "checkpoint"),
    "pages": ("inference", "training", "evaluation", "cli", "models", "prior", "data", "checkpoint"),
    "io": ("inference", "training", "evaluation", "cli", "models", "prior", "data", "checkpoint"),
}


def test_no_module_imports_a_layer_above_its_own():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for name in _imports(path):
            parts = name.split(".")
            if len(parts) > 1 and parts[1] in BELOW.get(layer, ()):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not wrong, wrong
