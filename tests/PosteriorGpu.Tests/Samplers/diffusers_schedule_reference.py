"""Regenerates the reference numbers hard-coded in NoiseScheduleTests.cs and TimestepSpacingTests.cs.

Needs torch and numpy (not diffusers): it evaluates the same expressions as diffusers'
DDIMScheduler/DDPMScheduler.__init__ and set_timesteps (src/diffusers/schedulers/scheduling_ddim.py and
scheduling_dpmsolver_multistep.py, commit 58eb52c). The committed numbers came from torch 2.11.0 on an
x86-64 CPU with AVX512 and numpy 2.5.2. Run: python3 diffusers_schedule_reference.py
"""
import math

import numpy as np
import torch


def fnv1a(words, h=0xCBF29CE484222325):
    for w in words:
        w &= 0xFFFFFFFF
        for k in range(4):
            h ^= (w >> (8 * k)) & 0xFF
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def cosine_betas(n, max_beta=0.999):  # diffusers' betas_for_alpha_bar, "cosine" transform
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return torch.tensor([min(1 - f((i + 1) / n) / f(i / n), max_beta) for i in range(n)], dtype=torch.float32)


def betas(kind, T, b0, b1):
    if kind == "linear":
        return torch.linspace(b0, b1, T, dtype=torch.float32)
    if kind == "scaled_linear":
        return torch.linspace(b0**0.5, b1**0.5, T, dtype=torch.float32) ** 2
    return cosine_betas(T)


def bits(t):
    return t.numpy().view(np.int32).tolist()


def ddim_timesteps(T, n, spacing):
    if spacing == "linspace":
        return np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        return (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.int64)
    return np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1


def dpm_timesteps(T, n, spacing):
    if spacing == "linspace":
        return np.linspace(0, T - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
    if spacing == "leading":
        return (np.arange(0, n + 1) * (T // (n + 1))).round()[::-1][:-1].copy().astype(np.int64)
    return np.arange(T, 0, -T / n).round().copy().astype(np.int64) - 1


print("torch", torch.__version__, torch.backends.cpu.get_cpu_capability(), "numpy", np.__version__)
for kind, b0, b1 in [("linear", 1e-4, 0.02), ("linear", 1e-4, 0.002), ("scaled_linear", 0.00085, 0.012), ("squaredcos_cap_v2", 0, 0)]:
    for T in (1000, 37):
        b = betas(kind, T, b0, b1)
        ac = torch.cumprod(1.0 - b, dim=0)
        print(f"{kind} T={T} {b0}..{b1}: betas 0x{fnv1a(bits(b)):016x} alphas_cumprod 0x{fnv1a(bits(ac)):016x}")
        if T == 1000:
            for i in (0, 1, 499, 500, 998, 999):
                print(f"    [{i}] beta {b[i].item()!r} alpha_cumprod {ac[i].item()!r}")
for name, fn in (("ddim", ddim_timesteps), ("dpm", dpm_timesteps)):
    for T in (1000, 999):
        for spacing in ("leading", "trailing", "linspace"):
            h = 0xCBF29CE484222325
            for n in range(1, T + 1):
                t = fn(T, n, spacing).tolist()
                if len(t) == n + 1 and t[-1] == -1:  # NumPy's float arange overshoots; PosteriorGpu drops the -1
                    t = t[:-1]
                h = fnv1a(t, h)
            print(f"{name} T={T} {spacing}: 0x{h:016x}")
