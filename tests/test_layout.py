"""The package's layering: inference and the `deblur` command never load the training code."""

import subprocess
import sys


def test_inference_and_deblur_do_not_import_training():
    code = (
        "import sys, swintormer_cli.cli.deblur, swintormer_cli.inference.pipeline, swintormer_cli.inference.batch;"
        "from swintormer_cli.cli.common import check_environment; check_environment();"
        "from swintormer_cli.inference.memory import default_budget; import torch; default_budget(torch.device('cpu'));"
        "print(sorted(m for m in sys.modules if m.startswith('swintormer_cli.training')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
