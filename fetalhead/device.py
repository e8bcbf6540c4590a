"""The device and precision a model runs with: one helper for training, inference and benchmarks."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from fetalhead.errors import FetalheadError

__all__ = ["autocast_settings", "cpu_has_bf16_units", "device_name", "precision_name", "resolve_device", "threads_text"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, else CUDA when available, else CPU; a one-line FetalheadError for a device
    name torch does not know or CUDA asked for where there is none."""
    if device is not None:
        try:
            dev = torch.device(device)
        except RuntimeError as e:
            raise FetalheadError(f"unknown device {device!r}: {str(e).splitlines()[0]}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise FetalheadError(f"device {device!r}: CUDA is not available on this machine (use 'cpu')")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    """Human-readable name of `device`: the GPU model, or "CPU: <model>"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()}"


def threads_text() -> str:
    """The CPU threads torch uses, in words: "2 threads", "1 thread"."""
    n = torch.get_num_threads()
    return f"{n} thread{'' if n == 1 else 's'}"


def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bf16 matrix products in hardware: Intel AMX tiles (Sapphire
    Rapids and later) or AVX-512 BF16 instructions (e.g. AMD EPYC Zen 4). There bf16 autocast
    trains the small U-Net 1.5-2.1x faster than fp32 (`fetalhead bench --precision small`:
    benchmarks/precision_cpu*.json); elsewhere it is emulated and slower."""
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and bool(probe()):
                return True
        except RuntimeError:
            continue
    return False


def autocast_settings(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None for fp32, whether a GradScaler is needed) for a precision name.

    "auto": bf16 on CUDA when the GPU supports it (Ampere and later), else fp16 with loss
    scaling; on the CPU bf16 where it has bf16 matrix units (`cpu_has_bf16_units`), else fp32.
    """
    cuda = device.type == "cuda"
    if precision == "auto":
        if not cuda:
            return (torch.bfloat16, False) if cpu_has_bf16_units() else (None, False)
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return None, False
    if precision == "bf16":
        return torch.bfloat16, False  # bf16 has fp32's exponent range: no loss scaling
    if precision == "fp16":
        if not cuda:
            raise FetalheadError("precision 'fp16' needs a CUDA device; use 'bf16' or 'fp32' on the CPU")
        return torch.float16, True
    raise FetalheadError(f"unknown precision {precision!r}; choose auto, bf16, fp16 or fp32")


def precision_name(precision: str, device: torch.device) -> str:
    """What `precision` ("auto", "bf16", "fp16", "fp32") resolves to on `device`: "bf16",
    "fp16" or "fp32" (the name recorded with a trained model)."""
    dtype, _ = autocast_settings(precision, device)
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
