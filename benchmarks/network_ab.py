"""The network alone, before and after this project's CPU work, in fp32/bf16 and NCHW/channels-last.

    python benchmarks/network_ab.py [--baseline f2bfe79] > benchmarks/results/network-layout-precision-<cpu>.md

The baseline's attention module (window and channel attention, feed-forward) is taken from git and the default
model's weights loaded into both networks; one batch of 4 tiles of 256 px with its sampled prior, best of 2x3.
"""

import argparse
import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import swintormer_cli.models.swintormer as S
from swintormer_cli.checkpoint import load_model

ROOT = Path(__file__).resolve().parent.parent
parser = argparse.ArgumentParser()
parser.add_argument("--baseline", default="f2bfe79")
args = parser.parse_args()
source = subprocess.run(
    ["git", "show", f"{args.baseline}:swintormer_cli/models/attention.py"], cwd=ROOT, check=True, capture_output=True
).stdout
path = Path(tempfile.mkdtemp()) / "attention_baseline.py"
path.write_bytes(source)
spec = importlib.util.spec_from_file_location("attention_baseline", path)
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)

b = load_model(ROOT / "weights" / "tiny-latent.safetensors")
new_model, prior = b.model.eval(), b.prior.eval()
S.TransformerBlock = old.TransformerBlock
old_model = S.Swintormer(new_model.config).eval()
old_model.load_state_dict(new_model.state_dict())
x = torch.rand(4, 3, 256, 256)
with torch.no_grad():
    pr = prior(x, steps=20)


def t(model, dtype, cl, n=3):
    m = model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
    xx = x.contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        m(xx, pr)
        s = time.perf_counter()
        for _ in range(n):
            m(xx, pr)
    return (time.perf_counter() - s) / n * 1000


rows = []
for rep in range(2):
    for name, model in (("old", old_model), ("new", new_model)):
        for dtype in (torch.float32, torch.bfloat16):
            for cl in (False, True):
                rows.append((rep, name, str(dtype).split(".")[1], cl, t(model, dtype, cl)))
best = {}
for _rep, name, d, cl, ms in rows:
    k = (name, d, cl)
    best[k] = min(best.get(k, 1e9), ms)
print("| network code | precision | layout | ms per 4 tiles of 256 | MP/s of tile area |\n|---|---|---|---|---|")
for (name, d, cl), ms in best.items():
    print(f"| {name} | {d} | {'channels-last' if cl else 'NCHW'} | {ms:.0f} | {4 * 0.065536 / (ms / 1000):.3f} |")
