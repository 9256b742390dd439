"""`swintormer info`: parameters and GMACs per preset, the prior and its cost."""

from __future__ import annotations

import typer

from ..defaults import DEFAULT_PRIOR_STEPS
from .common import out, usage_error


def info(
    preset: str | None = typer.Option(None, help="Show one preset (tiny, small, paper); default: all."),
    size: int = typer.Option(256, help="Square input size the MACs are counted for."),
    prior: str = typer.Option("latent", help="Prior to count with the network: latent or none."),
    prior_steps: int = typer.Option(DEFAULT_PRIOR_STEPS, help="Sampling steps counted for the prior."),
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
    table = Table(title=f"Swintormer presets at {size}x{size}")
    for column in (
        "preset",
        "params (M)",
        "GMACs",
        "window",
        "dim",
        "blocks enc/latent/dec/refine",
        "prior",
        "prior params (M)",
        f"prior GMACs ({prior_steps} steps)",
    ):
        table.add_column(column, justify="right" if column[0] in "pGw" or "(" in column else "left")
    for name in names:
        net = Swintormer(make_preset(name)).eval()
        c = net.config
        row = [
            name,
            f"{net.num_parameters / 1e6:.2f}",
            f"{count_macs(net, size) / 1e9:.2f}",
            str(c.window_size),
            str(c.dim),
            f"{'/'.join(map(str, c.encoder_blocks))}/{c.latent_blocks}/"
            f"{'/'.join(map(str, c.decoder_blocks))}/{c.refinement_blocks}",
        ]
        if prior == "latent":
            p = LatentPrior()
            params = sum(t.numel() for t in p.parameters() if t is not None) - sum(
                t.numel() for t in p.target_encoder.parameters()
            )
            row += ["latent", f"{params / 1e6:.2f}", f"{prior_macs(p, size, prior_steps) / 1e9:.3f}"]
        else:
            row += ["none", "-", "-"]
        table.add_row(*row)
    if not preset:
        ref = Swintormer(REFERENCE_CONFIGS["restormer"]).eval()
        table.add_row(
            "restormer (reference)",
            f"{ref.num_parameters / 1e6:.2f}",
            f"{count_macs(ref, size) / 1e9:.2f}",
            "-",
            "48",
            "4,6,6/8/6,6,4/4",
            "-",
            "-",
            "-",
        )
    out.print(table)
    if prior == "latent":
        out.print(
            "The latent prior: a condition encoder (PixelUnshuffle 4 + convs) of the blurry image, a 4-channel "
            "latent at 1/16 resolution sampled by a diffusers UNet2DModel with DDIM (default) or DDPM. "
            "Its parameter count excludes the training-only target encoder."
        )
