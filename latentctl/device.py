"""Device and precision choices, resolved in one place."""

from __future__ import annotations

import torch

from latentctl.errors import UsageError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU. Asking for one that is absent is an error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise UsageError(f"--device must be one of {', '.join(DEVICES)} (or cuda:N), got {name!r}")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name.startswith("cuda") and not cuda:
        raise UsageError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    if name == "mps" and not mps:
        raise UsageError("--device mps: Apple's MPS backend is not available here; use --device cpu or auto")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True where this CPU computes in bfloat16 in hardware (AVX-512 BF16 or AMX, on x86).

    Elsewhere oneDNN emulates bf16 and autocast is far slower than float32: about 15x slower per
    step was measured on an AVX2-only EPYC (docs/performance.md). torch only exposes the check under
    private names, so a torch without them counts as "no".
    """
    cpu = getattr(torch, "cpu", None)
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, name, None)
        try:
            if check is not None and check():
                return True
        except (RuntimeError, AttributeError):  # pragma: no cover - depends on the torch build
            continue
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` means bfloat16 autocast on CUDA GPUs that support it and on CPUs with native bf16
    arithmetic (where it measured 1.8-2x faster per step than float32 with GAN quality held; see
    docs/performance.md), and float32 elsewhere."""
    if name not in ("auto", "fp32", "bf16"):
        raise UsageError(f"--precision must be auto, fp32 or bf16, got {name!r}")
    if name != "auto":
        if name == "bf16" and device.type == "mps":
            raise UsageError("--precision bf16 is not supported on MPS; use fp32")
        return name
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context for ``precision`` (a no-op context for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
