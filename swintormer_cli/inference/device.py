"""Choosing the device and the numeric precision a model runs in."""

from __future__ import annotations

import torch

DEVICES_HELP = "auto, cpu, cuda, cuda:N or mps"
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def prepare_device(device: torch.device) -> torch.memory_format:
    """Set the process up to run models on ``device`` and return the memory format to run them in.

    Channels-last on the CPU: oneDNN's convolutions and the attention's pixel-major layout run 10-25 % faster in
    it, forward and backward (docs/speed.md); on GPUs it is not measured yet, so left as it is. On the CPU freed
    memory is also kept for reuse (``memory.keep_freed_memory``)."""
    if device.type != "cpu":
        return torch.contiguous_format
    from .memory import keep_freed_memory

    keep_freed_memory()
    return torch.channels_last


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU. Asking for a device that is not there is an error."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            spec = "cuda"  # resolved to its index below
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        else:
            return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {spec!r} (use {DEVICES_HELP})") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} asked for, but this PyTorch sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) exist")
        if device.index is None:
            # With its index: tensors report cuda:0, a bare "cuda" compares unequal to that (a generator's check).
            device = torch.device("cuda", torch.cuda.current_device())
    elif device.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ValueError("device 'mps' asked for, but this PyTorch sees no Apple GPU")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {spec!r} (use {DEVICES_HELP})")
    return device


def native_bf16_cpu() -> bool:
    """Whether this CPU computes in bf16 in hardware (AVX512-BF16 or AMX).

    Without it, bf16 is emulated and slower than fp32, so ``auto`` never picks it there."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # an older PyTorch without the probes: assume not
        return False


def resolve_precision(spec: str, device: torch.device) -> torch.dtype:
    """``auto``: on the CPU bf16 where it has native bf16 (measured faster at the same quality, see
    docs/speed.md), else fp32; on GPUs bf16 where supported, else fp16."""
    spec = (spec or "auto").strip().lower()
    if spec not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {spec!r}")
    if spec != "auto":
        return _DTYPES[spec]
    if device.type == "cpu":
        return torch.bfloat16 if native_bf16_cpu() else torch.float32
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def precision_reason(spec: str, device: torch.device) -> str:
    """Why ``auto`` chose what it chose, for the set-up line ('' for an explicit choice)."""
    if (spec or "auto").strip().lower() != "auto":
        return ""
    if device.type == "cpu":
        return "auto: native bf16 on this CPU" if native_bf16_cpu() else "auto: no native bf16 on this CPU"
    return "auto"


def precision_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}[dtype]
