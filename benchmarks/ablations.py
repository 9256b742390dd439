"""Run training ablations at equal budget and score each on both development sets, in one table.

    python benchmarks/ablations.py configs/ablations/recipe-*.yaml --parallel 2 \
        --out benchmarks/results/ablations-recipe

For each config: ``swintormer train --config FILE --resume auto`` (so an interrupted run continues where it
stopped, and a finished one is not trained again), then ``swintormer eval`` of the run's EMA weights at the
default inference settings on kodak24-defocus (PSNR, SSIM) and real-defocus-dev (PSNR, and gain-compensated
PSNR), each report kept as JSON beside the table. Runs go ``--parallel`` at a time, each with the threads its
config names (the recipe configs use one, so two runs share this 2-core machine evenly). An eval report already
written for a run's current weights is reused.

Writes OUT.json (every run: config, steps, wall time, last training loss, the scores) and OUT.md (the table).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.harness import cpu_name, save_results  # noqa: E402
from swintormer_cli.training.config import load_config  # noqa: E402
from swintormer_cli.weights import sha256_of  # noqa: E402

SETS = {
    "kodak": ("kodak24-defocus", []),
    "real": ("real-defocus-dev", ["--gain-compensate"]),
}


def run(cmd: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.call(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        raise RuntimeError(f"exit {rc}: {' '.join(cmd)} (log: {log})")


def averages(report: dict, kind: str) -> dict:
    """The averages over all images of an eval report's first row of ``kind`` (``model`` or ``input``)."""
    return next(r for r in report["rows"] if r["kind"] == kind)["averages"]["all"]


def ablate(config_path: Path, data: Path, out: Path) -> dict:
    cfg = load_config(config_path)
    run_dir = REPO / cfg.output_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "ablation.log"
    swintormer = [sys.executable, "-m", "swintormer_cli"]
    started = time.time()
    run([*swintormer, "train", "--config", str(config_path), "--resume", "auto", "--no-progress"], log)
    train_s = time.time() - started
    weights = run_dir / "checkpoints" / "last" / "ema.safetensors"
    digest = sha256_of(weights)
    scores: dict[str, dict] = {}
    for key, (folder, flags) in SETS.items():
        report_path = out.parent / f"{out.name}-eval" / f"{cfg.name}-{key}.json"
        report = json.loads(report_path.read_text()) if report_path.is_file() else None
        if report is None or report["model"].get("sha256") != digest:
            report_path.parent.mkdir(parents=True, exist_ok=True)
            cmd = [*swintormer, "eval", "--dataset", "pairs", "--data-root", str(data / "eval" / folder)]
            cmd += ["--weights", str(weights), *flags, "--json", str(report_path), "-q"]
            run(cmd, log)
            report = json.loads(report_path.read_text())
        scores[key] = {
            "model": averages(report, "model"),
            "input": averages(report, "input"),
            "report": str(report_path),
        }
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    return {
        "config": str(config_path),
        "name": cfg.name,
        "steps": cfg.max_steps,
        "batch": cfg.batch_size,
        "crop": cfg.data.crop_size,
        "threads": cfg.threads,
        "train_wall_s_this_call": round(train_s, 1),
        "last_logged_loss": losses[-1] if losses else None,
        "weights_sha256": digest,
        "scores": scores,
    }


def table(results: list[dict], machine: str) -> str:
    lines = [
        f"Machine: {machine}. Scores: `swintormer eval` at default settings (window 256, shift 192, 20 DDIM steps).",
        "",
        "| config | budget | Kodak PSNR / SSIM | real PSNR / gain-comp. PSNR |",
        "|---|---|---|---|",
    ]
    if results:
        k, r = results[0]["scores"]["kodak"]["input"], results[0]["scores"]["real"]["input"]
        lines.append(f"| input (blurry) | | {k['psnr']:.2f} / {k['ssim']:.4f} | {r['psnr']:.2f} / {r['gc_psnr']:.2f} |")
    for res in results:
        k, r = res["scores"]["kodak"]["model"], res["scores"]["real"]["model"]
        budget = f"{res['steps']} steps x {res['batch']} x {res['crop']} px"
        scores = f"{k['psnr']:.2f} / {k['ssim']:.4f} | {r['psnr']:.2f} / {r['gc_psnr']:.2f}"
        lines.append(f"| `{res['config']}` | {budget} | {scores} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the data folder")
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ablations")
    args = ap.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.parallel) as pool:
        futures = [pool.submit(ablate, c, args.data, args.out) for c in args.configs]
        results, failed = [], 0
        for config, future in zip(args.configs, futures, strict=True):
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 - one failed run must not lose the others' scores
                print(f"{config}: {exc}", file=sys.stderr)
                failed += 1
    machine = f"{cpu_name()}, {platform.machine()}"
    doc = {"machine": machine, "results": results}
    text = table(results, machine)
    save_results(args.out, text, doc)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
