"""CPU speed of the working tree against a baseline commit, both measured in one run on one machine.

    python benchmarks/speed.py                          # full run against f2bfe79 (roughly 40-60 min on 2 cores)
    python benchmarks/speed.py --baseline HEAD~3 --repeats 2
    python benchmarks/speed.py --quick --out /tmp/speed-smoke.json   # smoke test of this script (a few minutes)

The baseline ref is checked out in a temporary detached git worktree; the current code is the working tree this
file lives in, uncommitted changes included. Every measurement is a fresh process of the same interpreter with
``PYTHONPATH=<tree>`` in front, so each tree's own ``swintormer_cli`` (and its own ``weights/`` folder) is the one
imported; a probe process per tree prints what it imported and the run stops if it is not that tree. For each
item the baseline runs first, then the current tree, ``--repeats`` times, and the best of each is kept: alternating
spreads slow drift of the machine (thermal, neighbours) evenly over both sides.

What is measured, per tree:
  - ``swintormer deblur IN.png -o OUT.png --overwrite -q`` of a 12 MP (4000x3000) and a 1 MP (1152x864) photo,
    resized from examples/citrus-blurry.png, default model and settings: the deblur time and MP/s the CLI prints
    in its summary line, the command's wall time, the child's peak RSS, and the network's achieved GMAC/s
    (MACs of one tile, times the tiles of the grid, over the deblur time) as a share of the matmul peak;
  - the one-photo run of the bundled example, command to file (start-up, model load and writing included);
  - training steps/s of each tree's default recipe (the baseline's configs/tiny-cpu.yaml; the current tree's
    ``--train-config``, unless given the recipe weights/registry.json names for the default model), restorer
    stage from scratch, no validation, one checkpoint at the end, from the logged windows after the first (which
    holds the warm-up), in one process and in two gloo processes;
and once per run: the fp32 and bf16 matmul peak (GFLOP/s) and the CPU (model, flags, cores, torch threads).

Writes benchmarks/results/speed-<cpu>.json (every raw number, the stderr tails of the children) and a Markdown
table next to it (.md, also printed): measurement | baseline | current | ratio, where the ratio is current over
baseline for rates and sizes, baseline over current for times, so above 1 means faster (or bigger) now.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE = "f2bfe79"
EXAMPLE = Path("examples/citrus-blurry.png")
BASELINE_TRAIN_CONFIG = Path("configs/tiny-cpu.yaml")
"""The baseline's default recipe (the first leg of the chain that made its default model)."""
# The README's two-process CPU runs use batch 4 per process, 8 in all: the same samples per step as the
# one-process run of the config's batch 8, so the two steps/s compare.
TWO_PROC_BATCH = 4
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
TAIL_CHARS = 3000


def default_recipe() -> Path:
    """The current tree's default model's training config (``--train-config`` unless given): the first leg of the
    recipe its registry entry names (the registry owns which model is the default)."""
    registry = json.loads((REPO / "weights" / "registry.json").read_text())
    recipe = registry["models"][registry["default"]].get("recipe")
    if not recipe:
        raise SystemExit(
            f"weights/registry.json: the default model {registry['default']} names no recipe; give --train-config"
        )
    sys.path.insert(0, str(REPO))
    from swintormer_cli.training.config import recipe_configs

    return recipe_configs(recipe, REPO)[0].relative_to(REPO)


SUMMARY = re.compile(r"(\d+) deblurred, (\d+) skipped, (\d+) failed in ([\d.]+) s(?:, ([\d.]+) MP/s)?")
MARKER = "SPEED_JSON "

# Runs inside each tree's interpreter: what got imported (the check that PYTHONPATH did its job) and what one
# tile of the default model costs. The MAC counts are optional, so an older baseline without them still runs.
PROBE = r"""
import json, sys
import torch
import swintormer_cli
from swintormer_cli.weights import weights_dir
out = {"package": swintormer_cli.__file__, "weights_dir": str(weights_dir()), "torch": torch.__version__,
       "threads": torch.get_num_threads()}
try:
    from swintormer_cli.inference import DeblurPipeline
    from swintormer_cli.models import count_macs
    pipe = DeblurPipeline.from_pretrained(device="cpu")
    s = pipe.settings
    out.update(model=pipe.name, window=s.window, shift=s.shift, prior_steps=s.prior_steps, sampler=s.sampler)
    out["tiles"] = {f"{w}x{h}": len(pipe.grid(h, w)) for w, h in json.loads(sys.argv[1])}
    out["network_macs"] = count_macs(pipe.model, s.window)
    if pipe.prior is not None:
        from swintormer_cli.prior.cost import prior_macs
        out["prior_macs"] = prior_macs(pipe.prior, s.window, s.prior_steps, s.sampler)
except Exception as exc:
    out["macs_error"] = f"{type(exc).__name__}: {exc}"
print("SPEED_JSON " + json.dumps(out))
"""

# The machine's arithmetic ceiling at torch's default threads: the best of a few large matmuls per dtype.
PEAK = r"""
import json, sys, time
import torch
n, repeats = int(sys.argv[1]), int(sys.argv[2])
out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "size": n, "repeats": repeats}
for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    c = a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    out[f"{name}_s"] = best
    out[f"{name}_gflops"] = 2 * n**3 / best / 1e9
print("SPEED_JSON " + json.dumps(out))
"""


class Failed(Exception):
    """One measurement that did not produce its numbers; the message is one line for the table."""


@dataclass
class Tree:
    label: str
    """``baseline`` or ``current``."""
    root: Path
    commit: str


@dataclass
class Child:
    cmd: list[str]
    rc: int
    wall_s: float
    maxrss_mib: float
    stdout: str
    stderr: str

    def record(self) -> dict:
        return {
            "cmd": self.cmd,
            "rc": self.rc,
            "wall_s": self.wall_s,
            "maxrss_mib": self.maxrss_mib,
            "stdout_tail": self.stdout[-TAIL_CHARS:],
            "stderr_tail": self.stderr[-TAIL_CHARS:],
        }

    def last_line(self) -> str:
        lines = [line for line in (self.stderr + self.stdout).splitlines() if line.strip()]
        return lines[-1].strip() if lines else "no output"


def run_child(cmd: list[str], cwd: Path, env: dict, timeout: float, logs: Path) -> Child:
    """Run one command to completion: wall time, exit status and its own peak RSS.

    ``os.wait4`` gives the rusage of exactly this child (and of the processes it reaped, e.g. torchrun's
    workers), which RUSAGE_CHILDREN deltas cannot once an earlier child had a larger peak. Output goes to files,
    not pipes, so nothing blocks while we sit in wait4.
    """
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "stdout.txt", logs / "stderr.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)
        # Its own session, so a timeout (or our own interruption) can take down torchrun's workers with it.
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.start()
        reaped = False
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            reaped = True
        finally:
            timer.cancel()
            if not reaped:
                _kill_group(proc.pid)
                proc.wait()
        wall = time.perf_counter() - started
    rc = os.waitstatus_to_exitcode(status)
    proc.returncode = rc  # already reaped; keeps Popen from waiting on a pid that is gone
    if rc == -signal.SIGKILL and wall >= timeout:
        err_text = err_path.read_text(errors="replace") + f"\ntimed out after {timeout:.0f} s"
        err_path.write_text(err_text)
    # ru_maxrss is in KiB on Linux.
    return Child(
        cmd,
        rc,
        wall,
        usage.ru_maxrss / 1024,
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
    )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def marker_json(child: Child) -> dict:
    for line in reversed(child.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise Failed(f"exit {child.rc}: {child.last_line()}")


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args = args
        self.work = work
        self.timeout = args.timeout
        self.counter = 0
        self.train_runs = 0
        self.probes: dict[str, dict] = {}
        self.peak: dict | None = None

    def env(self, tree: Tree, **extra: str) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree.root), env.get("PYTHONPATH", "")) if p)
        # Never let a measurement wait on the network; the default model is embedded in each tree.
        env["HF_HUB_OFFLINE"] = "1"
        env["COLUMNS"] = "200"
        env.update(extra)
        return env

    def child(self, tree: Tree, name: str, cmd: list[str], **env: str) -> Child:
        self.counter += 1
        logs = self.work / "logs" / f"{self.counter:02d}-{name}-{tree.label}"
        return run_child(cmd, tree.root, self.env(tree, **env), self.timeout, logs)

    # -- once per tree / once per run -----------------------------------------------------------------
    def probe(self, tree: Tree, sizes: list[tuple[int, int]]) -> dict:
        child = self.child(tree, "probe", [sys.executable, "-c", PROBE, json.dumps(sizes)])
        info = marker_json(child)
        info["child"] = child.record()
        imported = Path(info["package"]).resolve()
        weights = Path(info["weights_dir"]).resolve()
        if not imported.is_relative_to(tree.root) or not weights.is_relative_to(tree.root):
            raise SystemExit(
                f"{tree.label}: imported {imported} with weights {weights}, not from {tree.root}; "
                "PYTHONPATH did not take precedence, so the comparison would be meaningless"
            )
        print(f"{tree.label}: swintormer_cli from {imported}, weights from {weights}", flush=True)
        self.probes[tree.label] = info
        return info

    def measure_peak(self, tree: Tree) -> dict:
        size, repeats = (1024, 3) if self.args.quick else (2048, 5)
        child = self.child(tree, "peak", [sys.executable, "-c", PEAK, str(size), str(repeats)])
        self.peak = marker_json(child)
        self.peak["child"] = child.record()
        return self.peak

    # -- measurements ---------------------------------------------------------------------------------
    def deblur(self, tree: Tree, image: Path, size: tuple[int, int]) -> dict:
        out = self.work / f"out-{tree.label}-{image.stem}.png"
        cmd = [sys.executable, "-m", "swintormer_cli", "deblur", str(image), "-o", str(out), "--overwrite", "-q"]
        child = self.child(tree, f"deblur-{image.stem}", cmd)
        result = {"child": child.record(), "wall_s": child.wall_s, "maxrss_mib": child.maxrss_mib}
        match = SUMMARY.search(child.stderr)
        if child.rc != 0 or not match or match.group(1) != "1":
            raise Failed(f"exit {child.rc}: {child.last_line()}", result)
        seconds = float(match.group(4))
        megapixels = size[0] * size[1] / 1e6
        result.update(
            deblur_s=seconds,
            megapixels=megapixels,
            mps=megapixels / seconds,
            cli_mps=float(match.group(5)) if match.group(5) else None,
        )
        probe = self.probes.get(tree.label, {})
        tiles = probe.get("tiles", {}).get(f"{size[0]}x{size[1]}")
        if tiles and probe.get("network_macs"):
            result["tiles"] = tiles
            result["gmacs_per_s"] = probe["network_macs"] * tiles / seconds / 1e9
            if probe.get("prior_macs"):
                result["gmacs_per_s_with_prior"] = (probe["network_macs"] + probe["prior_macs"]) * tiles / seconds / 1e9
            # A MAC is two FLOPs, the peak is in FLOP/s.
            for dtype in ("fp32", "bf16"):
                if self.peak and self.peak.get(f"{dtype}_gflops"):
                    result[f"pct_{dtype}"] = 100 * 2 * result["gmacs_per_s"] / self.peak[f"{dtype}_gflops"]
        return result

    def example(self, tree: Tree) -> dict:
        out = self.work / f"out-{tree.label}-example.png"
        cmd = [sys.executable, "-m", "swintormer_cli", "deblur", str(EXAMPLE), "-o", str(out), "--overwrite", "-q"]
        child = self.child(tree, "example", cmd)
        result = {"child": child.record(), "wall_s": child.wall_s, "maxrss_mib": child.maxrss_mib}
        if child.rc != 0 or not out.is_file():
            raise Failed(f"exit {child.rc}: {child.last_line()}", result)
        return result

    def train(self, tree: Tree, processes: int) -> dict:
        steps, log_every = (6, 2) if self.args.quick else (self.args.train_steps, 20)
        self.train_runs += 1
        run_dir = self.work / f"train-{self.train_runs:02d}-{tree.label}-{processes}p"
        # Values are JSON, which the config loader reads as YAML: paths with spaces or colons survive.
        overrides = [
            "stage=restorer",
            f"max_steps={steps}",
            f"log_every={log_every}",
            "checkpoint_every=0",
            "validation.sets=[]",
            f"output_dir={json.dumps(str(run_dir))}",
            f"data.roots={json.dumps([str(self.args.data)])}",
        ]
        env = {}
        launcher = [sys.executable, "-m", "swintormer_cli"]
        if processes > 1:
            overrides.append(f"batch_size={TWO_PROC_BATCH}")
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
            launcher += ["-m", "swintormer_cli"]
            # torchrun would set 1 itself (with a warning); spelled out so both cores are used on any machine.
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
            if tree.label == "current":  # a recipe may name its threads for one process (the baseline's knows no key)
                overrides.append(f"threads={env['OMP_NUM_THREADS']}")
        config = self.args.train_config if tree.label == "current" else BASELINE_TRAIN_CONFIG
        if tree.label == "current":  # a recipe's later leg starts from an earlier leg's run: here, from scratch
            overrides.append("init_from=null")
        cmd = [*launcher, "train", "--config", str(config), "--no-progress"]
        for item in overrides:
            cmd += ["--set", item]
        child = self.child(tree, f"train-{processes}p", cmd, **env)
        result = {"child": child.record(), "wall_s": child.wall_s, "maxrss_mib": child.maxrss_mib, **env}
        if child.rc != 0:
            raise Failed(f"exit {child.rc}: {child.last_line()}", result)
        metrics = run_dir / "metrics.jsonl"
        if not metrics.is_file():
            raise Failed(f"no {metrics.name} written", result)
        windows = [r for r in map(json.loads, metrics.read_text().splitlines()) if "steps_per_s" in r]
        result["windows"] = windows
        if len(windows) < 2:
            raise Failed(f"{len(windows)} logged window(s); need 2 to leave out the warm-up", result)
        # Steps over seconds of the windows after the first (not the mean of their rates).
        counted = [(b["step"] - a["step"], b["steps_per_s"]) for a, b in zip(windows[:-1], windows[1:], strict=True)]
        result["steps_per_s"] = sum(n for n, _ in counted) / sum(n / rate for n, rate in counted)
        result["steps_counted"] = sum(n for n, _ in counted)
        shutil.rmtree(run_dir, ignore_errors=True)  # its checkpoint is of no use and is tens of MB
        return result


@dataclass
class Item:
    name: str
    title: str
    best: str
    """The value that picks the best repeat."""
    lower_is_better: bool
    run: Callable[[Tree], dict]
    """tree -> dict of values; raises Failed."""
    rows: list[tuple[str, str, str]]
    """(row label, value key, ``time``/``rate``/``size``)."""


def run_items(items: list[Item], trees: list[Tree], repeats: int) -> dict:
    results: dict = {}
    for item in items:
        entry = results[item.name] = {"title": item.title, "runs": {t.label: [] for t in trees}, "best": {}}
        for repeat in range(repeats):
            for tree in trees:
                print(f"[{item.name}] {tree.label} (repeat {repeat + 1}/{repeats}) ...", flush=True)
                try:
                    record = {"ok": True, **item.run(tree)}
                except Failed as exc:
                    extra = exc.args[1] if len(exc.args) > 1 else {}
                    record = {"ok": False, "error": exc.args[0], **extra}
                except Exception as exc:  # noqa: BLE001 - one broken measurement must not lose the others
                    record = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                entry["runs"][tree.label].append(record)
                shown = record.get(item.best) if record["ok"] else f"failed: {record['error']}"
                print(f"  {item.best} = {shown}", flush=True)
        for tree in trees:
            ok = [r for r in entry["runs"][tree.label] if r["ok"] and r.get(item.best) is not None]
            if ok:
                pick = min if item.lower_is_better else max
                entry["best"][tree.label] = pick(ok, key=lambda r: r[item.best])
            else:
                errors = [r.get("error", "no value") for r in entry["runs"][tree.label]]
                entry["best"][tree.label] = {"ok": False, "error": errors[0] if errors else "not run"}
    return results


# -- report ---------------------------------------------------------------------------------------------
def fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def cell(best: dict, key: str) -> tuple[str, float | None]:
    if not best.get("ok", False):
        message = " ".join(str(best.get("error", "")).split()).replace("|", "/")
        return f"failed: {message[:120]}", None
    value = best.get(key)
    if value is None:
        return "n/a", None
    return fmt(value), value


def table(results: dict, items: list[Item], probes: dict, machine_line: str) -> str:
    lines = [machine_line, "", "| measurement | baseline | current | ratio |", "|---|---|---|---|"]
    for key, label in (("network_macs", "network GMACs per tile"), ("prior_macs", "prior GMACs per tile")):
        b, c = probes.get("baseline", {}).get(key), probes.get("current", {}).get(key)
        if b is None and c is None:
            continue
        b_text, c_text = (fmt(v / 1e9) if v is not None else "n/a" for v in (b, c))
        ratio = f"{c / b:.2f}x" if b and c else ""
        lines.append(f"| {label} | {b_text} | {c_text} | {ratio} |")
    for item in items:
        best = results[item.name]["best"]
        for label, key, kind in item.rows:
            b_text, b = cell(best["baseline"], key)
            c_text, c = cell(best["current"], key)
            ratio = ""
            if b and c:
                ratio = f"{(b / c if kind == 'time' else c / b):.2f}x"
            lines.append(f"| {item.title}: {label} | {b_text} | {c_text} | {ratio} |")
    lines.append("")
    lines.append(
        "Ratio: baseline/current for times, current/baseline for rates and sizes (above 1: faster or larger now)."
    )
    return "\n".join(lines) + "\n"


# -- machine and git ------------------------------------------------------------------------------------
def cpu_info() -> dict:
    model, flags = None, set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    # Every core repeats the same block; the first one says it all.
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {
        "model": model or platform.processor() or "unknown",
        "flags": {flag: flag in flags for flag in CPU_FLAGS},
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def cpu_tag(model: str) -> str:
    lowered = model.lower()
    for known in ("epyc", "xeon", "ryzen", "threadripper", "core", "graviton", "neoverse"):
        if known in lowered:
            return known
    words = re.findall(r"[a-z0-9]+", lowered)
    return words[0] if words else "cpu"


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


def make_inputs(folder: Path, sizes: dict[str, tuple[int, int]]) -> dict[str, Path]:
    from PIL import Image

    source = Image.open(REPO / EXAMPLE).convert("RGB")
    paths = {}
    for label, size in sizes.items():
        path = folder / f"photo-{label}.png"
        source.resize(size, Image.Resampling.BICUBIC).save(path)
        paths[label] = path
    return paths


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline", default=DEFAULT_BASELINE, help=f"git ref to compare with (default {DEFAULT_BASELINE})"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per tree and item, best kept (default 1)")
    parser.add_argument("--train-steps", type=int, default=60, help="training steps per run (default 60)")
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared/data/train",
        help="training photos (default ../shared/data/train)",
    )
    parser.add_argument("--out", type=Path, help="JSON file (default benchmarks/results/speed-<cpu>.json)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per command (default 3600)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: a small deblur, the example, 6 training steps"
    )
    parser.add_argument(
        "--train-config",
        type=Path,
        help="the current tree's training recipe (default: the default model's, from weights/registry.json)",
    )
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-deblur", action="store_true", help="skip the photo deblurs and the example run")
    args = parser.parse_args(argv)
    args.data = args.data.resolve()
    if not args.skip_train and args.train_config is None:
        args.train_config = default_recipe()
    return args


DEBLUR_COLUMNS = [
    ("deblur s", "deblur_s", "time"),
    ("MP/s", "mps", "rate"),
    ("command wall s", "wall_s", "time"),
    ("network GMAC/s", "gmacs_per_s", "rate"),
    ("network + prior GMAC/s", "gmacs_per_s_with_prior", "rate"),
    ("% of fp32 peak", "pct_fp32", "rate"),
    ("% of bf16 peak", "pct_bf16", "rate"),
    ("peak RSS MiB", "maxrss_mib", "size"),
]


def plan_items(args, bench: Bench, images: dict, sizes: dict) -> list[Item]:
    """What is timed in each tree: the photo deblurs, the example from command to file, training steps/s."""
    items: list[Item] = []
    if not args.skip_deblur:
        for label, size in sizes.items():
            name = f"deblur {label} ({size[0]}x{size[1]})"
            run = lambda tree, image=images[label], size=size: bench.deblur(tree, image, size)  # noqa: E731
            items.append(Item(f"deblur {label}", name, "deblur_s", True, run, DEBLUR_COLUMNS))
        columns = [("wall s", "wall_s", "time"), ("peak RSS MiB", "maxrss_mib", "size")]
        items.append(Item("example", f"one photo, command to file ({EXAMPLE})", "wall_s", True, bench.example, columns))
    if not args.skip_train:
        for processes in (1,) if args.quick else (1, 2):
            columns = [("steps/s", "steps_per_s", "rate"), ("peak RSS MiB", "maxrss_mib", "size")]
            items.append(
                Item(
                    f"train {processes}p",
                    f"train {processes} process{'es' if processes > 1 else ''}",
                    "steps_per_s",
                    False,
                    lambda tree, p=processes: bench.train(tree, p),
                    columns,
                )
            )
    return items


def machine_line(machine: dict, peak: dict, args, baseline_commit: str, current: str, dirty: str) -> str:
    flags = " ".join(f for f, present in machine["flags"].items() if present) or "none of " + " ".join(CPU_FLAGS)
    peak_text = (
        f"matmul {peak['size']}: fp32 {fmt(peak['fp32_gflops'])}, bf16 {fmt(peak['bf16_gflops'])} GFLOP/s"
        if "fp32_gflops" in peak
        else f"matmul peak failed: {peak.get('error', '?')}"
    )
    return (
        f"Machine: {machine['model']}, {machine['cores']} cores ({flags}); torch {peak.get('torch', '?')}, "
        f"{peak.get('threads', '?')} threads; {peak_text}. Baseline {args.baseline} ({baseline_commit[:10]}), "
        f"current {current[:10]}{' + uncommitted changes' if dirty else ''}"
        f"{'; QUICK smoke run' if args.quick else ''}; best of {args.repeats}."
    )


def payload(args, machine, peak, trees, dirty, sizes, bench: Bench, results, report) -> dict:
    """Everything the JSON file records: the command, machine, trees, settings, probes and results."""
    return {
        "command": [sys.executable, *sys.argv],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine,
        "peak": peak,
        "trees": {
            t.label: {"root": str(t.root), "commit": t.commit, "ref": args.baseline if t.label == "baseline" else None}
            for t in trees
        },
        "current_dirty_files": dirty.splitlines(),
        "settings": {
            "quick": args.quick,
            "repeats": args.repeats,
            "sizes": sizes,
            "train_steps": 6 if args.quick else args.train_steps,
            "train_config": {"baseline": str(BASELINE_TRAIN_CONFIG), "current": str(args.train_config or "")},
            "two_process_batch": TWO_PROC_BATCH,
            "data": str(args.data),
        },
        "probes": bench.probes,
        "results": results,
        "table": report,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = cpu_info()
    tag = cpu_tag(machine["model"])
    out = args.out or REPO / "benchmarks" / "results" / f"speed-{tag}{'-quick' if args.quick else ''}.json"
    sizes = {"0.2 MP": (512, 384)} if args.quick else {"12 MP": (4000, 3000), "1 MP": (1152, 864)}

    # SIGTERM ends the run through the finally blocks, so the worktree and the children go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    baseline_commit = git("rev-parse", "--verify", f"{args.baseline}^{{commit}}")
    work = Path(tempfile.mkdtemp(prefix="swintormer-speed-"))
    worktree = work / "baseline"
    try:
        git("worktree", "add", "--detach", str(worktree), baseline_commit)
        trees = [
            Tree("baseline", worktree.resolve(), baseline_commit),
            Tree("current", REPO, git("rev-parse", "HEAD")),
        ]
        dirty = git("status", "--porcelain", "--untracked-files=no")
        bench = Bench(args, work)
        for tree in trees:
            try:
                bench.probe(tree, list(sizes.values()))
            except Failed as exc:
                raise SystemExit(f"{tree.label}: the probe process failed ({exc.args[0]})") from None
        try:
            bench.measure_peak(trees[1])
        except Failed as exc:
            bench.peak = {"error": exc.args[0]}
        images = {} if args.skip_deblur else make_inputs(work, sizes)
        items = plan_items(args, bench, images, sizes)
        results = run_items(items, trees, args.repeats)
        peak = bench.peak or {}
        line = machine_line(machine, peak, args, baseline_commit, trees[1].commit, dirty)
        report = table(results, items, bench.probes, line)
        print()
        print(report, end="")
        out.parent.mkdir(parents=True, exist_ok=True)
        record = payload(args, machine, peak, trees, dirty, sizes, bench, results, report)
        out.write_text(json.dumps(record, indent=1) + "\n")
        out.with_suffix(".md").write_text(report)
        print(f"\nwrote {out} and {out.with_suffix('.md')}")
        failed = any(not r["best"][t.label].get("ok", False) for r in results.values() for t in trees)
        return 1 if failed else 0
    finally:
        removed = subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], capture_output=True
        )
        shutil.rmtree(work, ignore_errors=True)
        if removed.returncode != 0 and str(worktree) in git("worktree", "list", "--porcelain"):
            # Its folder is gone now; prune drops the record git keeps of it (and of any other missing one).
            git("worktree", "prune")


if __name__ == "__main__":
    sys.exit(main())
