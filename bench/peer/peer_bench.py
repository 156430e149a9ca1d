"""PyTorch's half of the side-by-side run (bench/gpu/run.sh): the same workloads as
`PosteriorGpu.Bench peer-run`, on the same GPU, in the same run, written to DIR/peer.json.

    python3 bench/peer/peer_bench.py DIR [--no-compile] [--device cuda|cpu]

DIR is peer-run's --out folder: ours.json gives the sizes (so both sides do the same work), and
each model folder holds the checkpoint plus the check batch (check_x.npy, check_t.npy and our
check_eps.npy). The peer first checks itself against our output (relative L2 error, TF32 off):
both sides must compute the same function before any time means anything.

Timing is the same as ours: wall clock around K back-to-back calls ended by a synchronisation,
divided by K, median of R repeats. Modes: eager float32 (TF32 off), eager TF32, torch.compile
(float32, TF32 off; compile time is reported, not counted).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_peer import UNetPeer  # noqa: E402

CHECK_TOLERANCE = 1e-3


def set_tf32(on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def median_ms(dev, call, calls, repeats):
    """Median over repeats of the per-call wall time (ms) of `calls` back-to-back calls."""
    call()
    sync(dev)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        sync(dev)
        times.append((time.perf_counter() - start) * 1000 / calls)
    return float(np.median(times))


def can_compile():
    return hasattr(torch, "compile")




def fp32_peak(dev):
    """The GPU's float32 peak: SMs x FP32 lanes per SM x 2 (FMA) x the maximum SM clock (nvidia-smi)."""
    if dev.type != "cuda":
        return None
    p = torch.cuda.get_device_properties(dev)
    lanes = {(7, 0): 64, (7, 5): 64, (8, 0): 64}.get((p.major, p.minor), 128)
    try:
        mhz = float(subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits", "-i", "0"],
                                   capture_output=True, text=True, check=True).stdout.split()[0])
    except Exception as e:  # noqa: BLE001 - report and go on without the peak
        print(f"  no fp32 peak: nvidia-smi failed ({e})")
        return None
    return {"name": p.name, "sms": p.multi_processor_count, "lanes_per_sm": lanes, "max_sm_mhz": mhz,
            "tflops": p.multi_processor_count * lanes * 2 * mhz * 1e6 / 1e12}


def sgemm(dev, ours, repeats):
    """torch.matmul of two n x n float32 matrices with TF32 off: cuBLAS's SGEMM, the row our GEMM core is held to."""
    n = ours["n"]
    set_tf32(False)
    g = torch.Generator(device=dev).manual_seed(3)
    a = torch.randn(n, n, device=dev, generator=g)
    b = torch.randn(n, n, device=dev, generator=g)
    c = torch.empty(n, n, device=dev)
    ms = median_ms(dev, lambda: torch.matmul(a, b, out=c), 3, repeats)
    out = {"n": n, "ms": ms, "tflops": 2.0 * n ** 3 / (ms * 1e9)}
    print(f"  sgemm {n}^3 (TF32 off): {ms:.3f} ms ({out['tflops']:.2f} TFLOP/s)", flush=True)
    return out


def langevin(dev, ours, repeats, use_compile):
    n = ours["n"]
    gen = torch.Generator(device=dev).manual_seed(1)
    x = torch.randn(n, device=dev, generator=gen)
    s = torch.randn(n, device=dev, generator=gen)
    g = torch.randn(n, device=dev, generator=gen)
    dst = torch.empty_like(x)
    h = 1e-4
    c = math.sqrt(2 * h)

    def step(x, s, g):
        x.add_(h * (s + g) + c * torch.randn_like(x))

    out = {"n": n}
    out["eager_ms"] = median_ms(dev, lambda: step(x, s, g), 10, repeats * 3)
    out["copy_ms"] = median_ms(dev, lambda: dst.copy_(x), 10, repeats * 3)
    out["copy_gbps"] = 8.0 * n / (out["copy_ms"] * 1e6)
    if use_compile:
        start = time.perf_counter()
        cstep = torch.compile(step)
        cstep(x, s, g)
        sync(dev)
        out["compile_seconds"] = time.perf_counter() - start
        out["compile_ms"] = median_ms(dev, lambda: cstep(x, s, g), 10, repeats * 3)
    print(f"  langevin 2^{int(math.log2(n))}: eager {out['eager_ms']:.4f} ms"
          + (f", compile {out['compile_ms']:.4f} ms" if "compile_ms" in out else "")
          + f"; copy {out['copy_ms']:.4f} ms ({out['copy_gbps']:.0f} GB/s)", flush=True)
    return out


def check(peer, folder, dev):
    x = torch.from_numpy(np.load(os.path.join(folder, "check_x.npy"))).to(dev)
    t = torch.from_numpy(np.load(os.path.join(folder, "check_t.npy"))).to(dev)
    ref = np.load(os.path.join(folder, "check_eps.npy"))
    set_tf32(False)
    with torch.no_grad():
        got = peer.forward(x, t).cpu().numpy()
    err = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
    print(f"  check {os.path.basename(folder)}: relative L2 error of the peer against our epsilon = {err:.3e}", flush=True)
    if not err < CHECK_TOLERANCE:
        raise SystemExit(f"peer_bench: the peer and PosteriorGpu disagree on {folder} (error {err:.3e} >= {CHECK_TOLERANCE}); "
                         "the timings would compare different functions")
    return err


def unet(dev, ours_rows, folders, repeats, use_compile, compile_max_batch=None):
    rows = []
    for name in dict.fromkeys(r["model"] for r in ours_rows):
        peer = UNetPeer(folders[name], dev)
        size = peer.c["sample_size"]
        batches = [r["batch"] for r in ours_rows if r["model"] == name]
        for b in batches:
            gen = torch.Generator(device=dev).manual_seed(12)
            x = torch.randn(b, peer.c["in_channels"], size, size, device=dev, generator=gen)
            t = (torch.arange(b, device=dev) * 37) % 1000
            calls = 10 if b == 1 else 3
            row = {"model": name, "batch": b}
            with torch.no_grad():
                for mode in ("fp32", "tf32"):
                    set_tf32(mode == "tf32")
                    row[mode + "_ms"] = median_ms(dev, lambda: peer.forward(x, t), calls, repeats)
                set_tf32(False)
                compiled = use_compile and (compile_max_batch is None or b <= compile_max_batch)
                if compiled:
                    start = time.perf_counter()
                    fwd = torch.compile(peer.forward)
                    fwd(x, t)
                    sync(dev)
                    row["compile_seconds"] = time.perf_counter() - start
                    row["compile_ms"] = median_ms(dev, lambda: fwd(x, t), calls, repeats)
            print(f"  unet {name} batch {b:4d}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith("_ms")), flush=True)
            rows.append(row)
            if compiled:
                torch._dynamo.reset()  # each batch compiles afresh; do not let guards pile up
    return rows


def schedule(dev):
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).tolist()


def ddpm(dev, ours, folder):
    """DDPM ancestral sampling as diffusers' DDPMScheduler walks it (leading spacing), eager float32."""
    set_tf32(False)
    peer = UNetPeer(folder, dev)
    abar = schedule(dev)
    steps, b = ours["steps"], ours["batch"]
    stride = 1000 // steps
    timesteps = [i * stride for i in reversed(range(steps))]
    gen = torch.Generator(device=dev).manual_seed(13)

    def run(ts):
        x = torch.randn(b, 3, 32, 32, device=dev, generator=gen)
        with torch.no_grad():
            for t in ts:
                eps = peer.forward(x, torch.full((b,), t, device=dev, dtype=torch.int64))
                a_t = abar[t]
                a_prev = abar[t - stride] if t - stride >= 0 else 1.0
                beta = 1 - a_t / a_prev
                x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
                mean = (math.sqrt(a_prev) * beta / (1 - a_t)) * x0 + (math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t)) * x
                if t > 0:
                    var = beta * (1 - a_prev) / (1 - a_t)
                    mean = mean + math.sqrt(var) * torch.randn(x.shape, device=dev, generator=gen)
                x = mean
        return x

    run(timesteps[:2])
    sync(dev)
    start = time.perf_counter()
    x = run(timesteps)
    sync(dev)
    seconds = time.perf_counter() - start
    finite = bool(torch.isfinite(x).all().item())
    print(f"  ddpm S32 batch {b}, {steps} steps: eager {seconds:.3f} s (finite: {finite})", flush=True)
    return {"batch": b, "steps": steps, "eager_seconds": seconds}


def posterior(dev, ours, folder):
    """Annealed Langevin (Xun, Gupta, Price) for random-pixel inpainting, the loop our sampler runs:
    nested measurements, 30 power iterations for ||A||^2, per level a step size, per step a network
    call at t = 0, the likelihood gradient and the Langevin update, a finiteness check per level."""
    set_tf32(False)
    peer = UNetPeer(folder, dev)
    abar0 = schedule(dev)[0]
    n, levels, per = ours["batch"], ours["levels"], ours["steps_per_level"]
    sigma_y, scale, observed = ours["sigma_y"], ours["step_scale"], ours["observed"]
    gen = torch.Generator(device=dev).manual_seed(14)
    mask = (torch.rand(1, 1, 32, 32, device=dev, generator=gen) < observed).float()
    start_x = 0.5 * torch.randn(n, 3, 32, 32, device=dev, generator=gen)
    y = mask * start_x[:1]
    eta = [sigma_y if levels == 1 else max(1.0, sigma_y) * (sigma_y / max(1.0, sigma_y)) ** (i / (levels - 1)) for i in range(levels)]
    inc = [math.sqrt(eta[k] ** 2 - eta[k + 1] ** 2) for k in range(levels - 1)]
    factor = -1 / math.sqrt(1 - abar0)
    t0 = torch.zeros(n, device=dev, dtype=torch.int64)

    def run(levels_used):
        x = start_x.clone()
        zs = [torch.randn(n, 3, 32, 32, device=dev, generator=gen) for _ in range(levels - 1)]
        yk = y.expand(n, -1, -1, -1).clone()
        for k in range(levels - 1):
            yk += inc[k] * zs[k]
        v = torch.randn(1, 3, 32, 32, device=dev, generator=gen)
        for _ in range(30):
            v = v / v.norm()
            v = mask * (mask * v)
            norm2 = v.norm().item()
        with torch.no_grad():
            for k in range(levels_used):
                h = scale / (1 + norm2 / eta[k] ** 2)
                for _ in range(per):
                    score = factor * peer.forward(x, t0)
                    grad = mask * (yk - mask * x) / eta[k] ** 2
                    x += h * (score + grad) + math.sqrt(2 * h) * torch.randn(x.shape, device=dev, generator=gen)
                if not torch.isfinite(x).all().item():
                    raise SystemExit("peer_bench: the posterior run diverged")
                if k < levels - 1:
                    yk -= inc[k] * zs[k]
        return x

    run(1)
    sync(dev)
    start = time.perf_counter()
    run(levels)
    sync(dev)
    seconds = time.perf_counter() - start
    print(f"  annealed langevin S32 batch {n}, {levels * per} steps: eager {seconds:.3f} s", flush=True)
    return {"batch": n, "steps": levels * per, "eager_seconds": seconds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (it needs PyTorch 2 and a C compiler)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--compile-max-batch", type=int, default=None,
                    help="torch.compile only the U-Net rows with at most this batch (compiling costs tens of seconds a row)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    with open(os.path.join(args.dir, "ours.json")) as f:
        ours = json.load(f)
    use_compile = not args.no_compile and can_compile()
    total = time.perf_counter()
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "compile": use_compile, "method": "wall clock over K calls + synchronize, / K, median of R repeats"}
    print(f"peer_bench: PyTorch {torch.__version__} on {out['device']}" + ("" if use_compile else " (no torch.compile)"), flush=True)
    out["peak"] = fp32_peak(dev)
    folders = {m["name"]: m["folder"] for m in ours.get("models", [])}
    out["checks"] = {}
    for name, folder in folders.items():
        out["checks"][name] = check(UNetPeer(folder, dev), folder, dev)
    if "sgemm" in ours:
        out["sgemm"] = sgemm(dev, ours["sgemm"], args.repeats)
    if "langevin" in ours:
        set_tf32(False)
        out["langevin"] = langevin(dev, ours["langevin"], args.repeats, use_compile)
    if "unet" in ours:
        out["unet"] = unet(dev, ours["unet"], folders, args.repeats, use_compile, args.compile_max_batch)
    if "ddpm" in ours:
        out["ddpm"] = ddpm(dev, ours["ddpm"], folders["S32"])
    if "posterior" in ours:
        out["posterior"] = posterior(dev, ours["posterior"], folders["S32"])
    out["seconds"] = time.perf_counter() - total
    path = os.path.join(args.dir, "peer.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    print(f"peer_bench: wrote {path} ({out['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
