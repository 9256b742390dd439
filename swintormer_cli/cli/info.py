"""`swintormer info`: parameters and GMACs per preset, the prior and its cost."""

from __future__ import annotations

import typer

from ..defaults import DEFAULT_PRIOR_STEPS
from .common import json_option, out, print_json, usage_error


def info(
    preset: str | None = typer.Option(None, help="Show one preset (tiny, small, paper); default: all."),
    size: int = typer.Option(256, help="Square input size the MACs are counted for."),
    prior: str = typer.Option("latent", help="Prior to count with the network: latent or none."),
    prior_steps: int = typer.Option(DEFAULT_PRIOR_STEPS, help="Sampling steps counted for the prior."),
    as_json: bool = json_option(),
) -> None:
    """Parameters and multiply-accumulates (torch.utils.flop_counter) of the presets."""
    from rich.table import Table

    from ..models import PRESETS, REFERENCE_CONFIGS, Swintormer, count_macs
    from ..models import preset as make_preset
    from ..prior import LatentPrior
    from ..prior.cost import prior_macs

    names = [preset] if preset else list(PRESETS)
    for name in names:
        if name not in PRESETS:
            raise usage_error(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    if prior not in ("latent", "none"):
        raise usage_error("--prior must be latent or none")
    rows = []
    for name in names:
        net = Swintormer(make_preset(name)).eval()
        c = net.config
        row = {
            "preset": name,
            "params_m": round(net.num_parameters / 1e6, 2),
            "gmacs": round(count_macs(net, size) / 1e9, 2),
            "window": c.window_size,
            "dim": c.dim,
            "blocks": f"{'/'.join(map(str, c.encoder_blocks))}/{c.latent_blocks}/"
            f"{'/'.join(map(str, c.decoder_blocks))}/{c.refinement_blocks}",
            "prior": prior,
            "prior_params_m": None,
            "prior_gmacs": None,
        }
        if prior == "latent":
            p = LatentPrior()
            params = sum(t.numel() for t in p.parameters() if t is not None) - sum(
                t.numel() for t in p.target_encoder.parameters()
            )
            row.update(
                prior_params_m=round(params / 1e6, 2), prior_gmacs=round(prior_macs(p, size, prior_steps) / 1e9, 3)
            )
        rows.append(row)
    if not preset:
        ref = Swintormer(REFERENCE_CONFIGS["restormer"]).eval()
        rows.append(
            {
                "preset": "restormer (reference)",
                "params_m": round(ref.num_parameters / 1e6, 2),
                "gmacs": round(count_macs(ref, size) / 1e9, 2),
                "window": None,
                "dim": 48,
                "blocks": "4,6,6/8/6,6,4/4",
                "prior": None,
                "prior_params_m": None,
                "prior_gmacs": None,
            }
        )
    if as_json:
        print_json({"size": size, "prior_steps": prior_steps if prior == "latent" else None, "presets": rows})
        return
    table = Table(title=f"Swintormer presets at {size}x{size}")
    columns = {
        "preset": "preset",
        "params_m": "params (M)",
        "gmacs": "GMACs",
        "window": "window",
        "dim": "dim",
        "blocks": "blocks enc/latent/dec/refine",
        "prior": "prior",
        "prior_params_m": "prior params (M)",
        "prior_gmacs": f"prior GMACs ({prior_steps} steps)",
    }
    for key, title in columns.items():
        table.add_column(title, justify="left" if key in ("preset", "blocks", "prior") else "right")
    digits = {"params_m": 2, "gmacs": 2, "prior_params_m": 2, "prior_gmacs": 3}

    def cell(key: str, value) -> str:
        return "-" if value is None else f"{value:.{digits[key]}f}" if key in digits else str(value)

    for row in rows:
        table.add_row(*(cell(key, row[key]) for key in columns))
    out.print(table)
    if prior == "latent":
        out.print(
            "The latent prior: a condition encoder (PixelUnshuffle 4 + convs) of the blurry image, a 4-channel "
            "latent at 1/16 resolution sampled by a diffusers UNet2DModel with DDIM (default) or DDPM. "
            "Its parameter count excludes the training-only target encoder."
        )
