"""One table of ratios from a side-by-side run: DIR/ours.json (PosteriorGpu.Bench peer-run) and
DIR/peer.json (peer_bench.py), measured on the same GPU in the same run. Prints markdown and
writes it to DIR/table.md.

    python3 bench/peer/ratios.py DIR

A ratio above 1 means PosteriorGpu is faster (peer time / our time). Each target of issue 9 is
marked met or MISSED; nothing is left out because it looks bad.
"""
import json
import os
import sys


def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def verdict(ok):
    return "met" if ok else "MISSED"


def table(ours, peer):
    lines = []
    add = lines.append
    add(f"PosteriorGpu ({ours['device']}) vs PyTorch {peer['torch']} ({peer['device']}), same device, same run.")
    add(f"Timing on both sides: {ours['method']}. Ratio = PyTorch time / our time (above 1: we are faster).")
    checks = ", ".join(f"{k} {v:.1e}" for k, v in peer.get("checks", {}).items())
    add(f"Peer checked against our epsilon (relative L2, TF32 off): {checks or 'none'}.")
    if not peer.get("compile"):
        add("torch.compile was not available in this run: its columns are empty.")
    add("")

    if "sgemm" in ours and "sgemm" in peer:
        o, p = ours["sgemm"], peer["sgemm"]
        add(f"### 0. SGEMM {o['n']}^3, float32 (PyTorch: torch.matmul, cuBLAS, TF32 off)")
        add("")
        add("| | ms | TFLOP/s | ratio vs ours |")
        add("|---|---:|---:|---:|")
        add(f"| PosteriorGpu (GemmCore) | {o['ms']:.3f} | {o['tflops']:.2f} | 1 |")
        add(f"| PyTorch | {p['ms']:.3f} | {p['tflops']:.2f} | {p['ms'] / o['ms']:.2f} |")
        add("")
        add(f"- At least 70% of PyTorch's SGEMM: {100 * p['ms'] / o['ms']:.0f}%, {verdict(p['ms'] / o['ms'] >= 0.7)}.")
        add("")

    if "langevin" in ours and "langevin" in peer:
        o, p = ours["langevin"], peer["langevin"]
        n = o["n"]
        add(f"### 1. Fused Langevin update, {n} floats (x += h(s + g) + sqrt(2h) z, noise drawn in the kernel)")
        add("")
        add("| | ms | GB/s (16 B/element) | ratio vs ours |")
        add("|---|---:|---:|---:|")
        add(f"| PosteriorGpu | {o['ms']:.4f} | {o['gbps']:.3g} | 1 |")
        add(f"| PyTorch eager | {p['eager_ms']:.4f} | {16 * n / (p['eager_ms'] * 1e6):.3g} | {p['eager_ms'] / o['ms']:.2f} |")
        if "compile_ms" in p:
            add(f"| torch.compile | {p['compile_ms']:.4f} | {16 * n / (p['compile_ms'] * 1e6):.3g} | {p['compile_ms'] / o['ms']:.2f} |")
        add(f"| copy (ours / torch), 8 B/element | {o['copy_ms']:.4f} / {p['copy_ms']:.4f} | {o['copy_gbps']:.0f} / {p['copy_gbps']:.0f} | |")
        add("")
        copy = max(o["copy_gbps"], p["copy_gbps"])
        frac = o["gbps"] / copy
        add(f"- Langevin at {100 * frac:.0f}% of the device-to-device copy bandwidth ({copy:.0f} GB/s): target 85%, {verdict(frac >= 0.85)}.")
        if "compile_ms" in p:
            add(f"- Faster than torch.compile: {p['compile_ms'] / o['ms']:.2f}x, {verdict(p['compile_ms'] > o['ms'])}.")
        add("")

    peak = peer.get("peak")
    flops = {m["name"]: m["flops_per_image"] for m in ours.get("models", [])}
    if "unet" in ours and "unet" in peer:
        add("### 2. U-Net forward, float32 (images/s; ratio = our images/s / theirs)")
        add("")
        add("| model | batch | ours ms | ours img/s | eager fp32 img/s | ratio | eager TF32 img/s | ratio | compile img/s | ratio | ours % fp32 peak | eager % fp32 peak |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        peer_rows = {(r["model"], r["batch"]): r for r in peer["unet"]}
        for r in ours["unet"]:
            p = peer_rows.get((r["model"], r["batch"]))
            if p is None:
                continue
            b = r["batch"]
            ips = lambda ms: b * 1000 / ms  # noqa: E731
            cells = [r["model"], str(b), f"{r['ms']:.3f}", f"{r['images_per_s']:.4g}"]
            for mode in ("fp32", "tf32", "compile"):
                ms = p.get(mode + "_ms")
                cells += ["-", "-"] if ms is None else [f"{ips(ms):.4g}", f"{ms / r['ms']:.2f}"]
            for ms in (r["ms"], p["fp32_ms"]):
                cells.append("-" if not peak else f"{100 * flops[r['model']] * ips(ms) / (peak['tflops'] * 1e12):.1f}")
            add("| " + " | ".join(cells) + " |")
        add("")
        s256 = [(r, peer_rows.get((r["model"], r["batch"]))) for r in ours["unet"] if r["model"] == "S32" and r["batch"] == 256]
        s1 = [(r, peer_rows.get((r["model"], r["batch"]))) for r in ours["unet"] if r["model"] == "S32" and r["batch"] == 1]
        for r, p in s256:
            if p:
                add(f"- S32 batch 256, at least eager fp32's images/s: {p['fp32_ms'] / r['ms']:.2f}x, {verdict(r['ms'] <= p['fp32_ms'])}.")
        for r, p in s1:
            if p:
                add(f"- S32 batch 1, lower latency than eager: {r['ms']:.3f} ms vs {p['fp32_ms']:.3f} ms, {verdict(r['ms'] < p['fp32_ms'])}.")
        if peak:
            add(f"- fp32 peak {peak['tflops']:.1f} TFLOP/s = {peak['sms']} SMs x {peak['lanes_per_sm']} lanes x 2 x {peak['max_sm_mhz']:.0f} MHz; "
                f"FLOPs per image from the config (convolutions, linears, attention products): "
                + ", ".join(f"{k} {v / 1e9:.2f} G" for k, v in flops.items()) + ".")
        add("")

    if "ddpm" in ours and "ddpm" in peer:
        o, p = ours["ddpm"], peer["ddpm"]
        add(f"### 3. End to end: S32, batch {o['batch']}")
        add("")
        add("| run | ours s | PyTorch eager s | ratio |")
        add("|---|---:|---:|---:|")
        add(f"| DDPM, {o['steps']} steps | {o['seconds']:.2f} | {p['eager_seconds']:.2f} | {p['eager_seconds'] / o['seconds']:.2f} |")
        if "graph_seconds" in o:
            note = "" if o.get("graph_bitwise_equal") else " (NOT bitwise the plain run's sample)"
            add(f"| DDPM, {o['steps']} steps, graph replay ({o['graph_steps_replayed']} steps replayed){note} | {o['graph_seconds']:.2f} | "
                f"{p['eager_seconds']:.2f} | {p['eager_seconds'] / o['graph_seconds']:.2f} |")
        if "posterior" in ours and "posterior" in peer:
            o2, p2 = ours["posterior"], peer["posterior"]
            add(f"| annealed Langevin posterior (inpainting), {o2['steps']} steps, batch {o2['batch']} | {o2['seconds']:.2f} | {p2['eager_seconds']:.2f} | {p2['eager_seconds'] / o2['seconds']:.2f} |")
        add("")
        add(f"- Full DDPM run faster than PyTorch eager: {verdict(o['seconds'] < p['eager_seconds'])}.")
        add("")
    if "dps" in ours:
        o = ours["dps"]
        note = "" if o.get("graph_bitwise_equal") else " (NOT bitwise the plain run's sample)"
        add(f"### 4. DPS at batch 1 ({o['task']}), {o['steps']} steps: graph replay against our plain path")
        add("")
        add("| run | seconds | plain / this |")
        add("|---|---:|---:|")
        add(f"| plain (every kernel launched from the host) | {o['seconds']:.3f} | 1.00 |")
        add(f"| graph replay ({o['graph_steps_replayed']} steps replayed, {o['graph_nodes']} nodes a graph){note} | "
            f"{o['graph_seconds']:.3f} | {o['seconds'] / o['graph_seconds']:.2f} |")
        if o.get("graph_fallback"):
            add(f"\nFallback: {o['graph_fallback']}")
        add("")
    add(f"Wall time: ours {ours.get('seconds', 0):.0f} s, peer {peer.get('seconds', 0):.0f} s.")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 bench/peer/ratios.py DIR")
    d = sys.argv[1]
    with open(os.path.join(d, "ours.json")) as f:
        ours = json.load(f)
    with open(os.path.join(d, "peer.json")) as f:
        peer = json.load(f)
    text = table(ours, peer)
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
