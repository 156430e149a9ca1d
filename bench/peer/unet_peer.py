"""PyTorch peer of PosteriorGpu's UNet2DModel, used only for side-by-side timing on the GPU machine.

A plain functional PyTorch forward pass of diffusers' UNet2DModel (the subset PosteriorGpu
supports), reading the same config.json + diffusion_pytorch_model.safetensors. It first checks
itself against a reference output (eps.npy) so both sides compute the same function, then times
eager float32 (TF32 off) and TF32 with CUDA events (median of repeats, after warm-up).

    python3 bench/peer/unet_peer.py MODEL_DIR [--check X.npy T.npy EPS.npy] [--batch 1,64,256]

bench/peer/peer_bench.py imports UNetPeer for the side-by-side run (bench/gpu/run.sh). Runs on the
CPU too (old PyTorch without scaled_dot_product_attention, no safetensors package) so that the
peer can be checked where there is no GPU.
"""
import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

try:
    from safetensors.torch import load_file
except ImportError:  # the format is simple enough to read without the package
    def load_file(path):
        dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
            data = f.read()
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            dtype = dtypes[info["dtype"]]
            if dtype is None:
                raise ValueError(f"{path}: {name} is {info['dtype']}, which this fallback reader does not handle")
            out[name] = torch.from_numpy(np.frombuffer(data[start:end], dtype=dtype).reshape(info["shape"]).copy())
        return out


def attention_heads(q, k, v):
    """softmax(q k^T / sqrt(d)) v over the last two dimensions ([N, heads, tokens, d])."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class UNetPeer:
    def __init__(self, folder, device):
        with open(os.path.join(folder, "config.json")) as f:
            self.c = json.load(f)
        self.w = {k: v.to(device).float() for k, v in load_file(os.path.join(folder, "diffusion_pytorch_model.safetensors")).items()}
        c = self.c
        self.groups = c.get("norm_num_groups", 32)
        self.eps = c.get("norm_eps", 1e-5)
        self.scale_shift = c.get("resnet_time_scale_shift", "default") == "scale_shift"

    def conv(self, x, name, stride=1, padding=1):
        return F.conv2d(x, self.w[name + ".weight"], self.w[name + ".bias"], stride=stride, padding=padding)

    def norm(self, x, name, groups=None):
        return F.group_norm(x, groups or self.groups, self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def lin(self, x, name):
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def resnet(self, x, temb, p, osf=1.0):
        h = self.conv(F.silu(self.norm(x, p + ".norm1")), p + ".conv1")
        t = self.lin(F.silu(temb), p + ".time_emb_proj")[:, :, None, None]
        if self.scale_shift:
            scale, shift = t.chunk(2, dim=1)
            h = self.norm(h, p + ".norm2") * (1 + scale) + shift
        else:
            h = self.norm(h + t, p + ".norm2")
        h = self.conv(F.silu(h), p + ".conv2")
        if p + ".conv_shortcut.weight" in self.w:
            x = self.conv(x, p + ".conv_shortcut", padding=0)
        return (x + h) / osf

    def attention(self, x, p, head_dim, groups, rescale=1.0):
        n, ch, hh, ww = x.shape
        h = self.norm(x, p + ".group_norm", groups) if groups else x
        tokens = h.view(n, ch, hh * ww).transpose(1, 2)
        heads = ch // head_dim
        q, k, v = (self.lin(tokens, p + s).view(n, -1, heads, head_dim).transpose(1, 2) for s in (".to_q", ".to_k", ".to_v"))
        a = attention_heads(q, k, v).transpose(1, 2).reshape(n, -1, ch)
        o = self.lin(a, p + ".to_out.0").transpose(1, 2).reshape(n, ch, hh, ww)
        return (o + x) / rescale

    def forward(self, x, t):
        c = self.c
        if c.get("center_input_sample"):
            x = 2 * x - 1
        boc = c["block_out_channels"]
        half = boc[0] // 2
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=x.device) / (half - c.get("freq_shift", 0))
        e = t[:, None].float() * torch.exp(exponent)[None, :]
        e = torch.cat([torch.sin(e), torch.cos(e)], dim=-1)
        if c.get("flip_sin_to_cos", True):
            e = torch.cat([e[:, half:], e[:, :half]], dim=-1)
        emb = self.lin(F.silu(self.lin(e, "time_embedding.linear_1")), "time_embedding.linear_2")
        layers = c.get("layers_per_block", 2)
        head = c.get("attention_head_dim", 8)
        h = self.conv(x, "conv_in")
        res = [h]
        for i, kind in enumerate(c["down_block_types"]):
            out = boc[i]
            for j in range(layers):
                h = self.resnet(h, emb, f"down_blocks.{i}.resnets.{j}")
                if kind == "AttnDownBlock2D":
                    h = self.attention(h, f"down_blocks.{i}.attentions.{j}", head or out, self.groups)
                res.append(h)
            if i < len(boc) - 1:
                pad = c.get("downsample_padding", 1)
                if pad == 0:
                    h = self.conv(F.pad(h, (0, 1, 0, 1)), f"down_blocks.{i}.downsamplers.0.conv", stride=2, padding=0)
                else:
                    h = self.conv(h, f"down_blocks.{i}.downsamplers.0.conv", stride=2, padding=pad)
                res.append(h)
        if c.get("mid_block_type", "UNetMidBlock2D"):
            osf = c.get("mid_block_scale_factor", 1)
            h = self.resnet(h, emb, "mid_block.resnets.0", osf)
            if c.get("add_attention", True):
                groups = c.get("attn_norm_num_groups") or (None if self.scale_shift else self.groups)
                h = self.attention(h, "mid_block.attentions.0", head or boc[-1], groups, osf)
            h = self.resnet(h, emb, "mid_block.resnets.1", osf)
        rev = list(reversed(boc))
        for i, kind in enumerate(c["up_block_types"]):
            out = rev[i]
            for j in range(layers + 1):
                h = self.resnet(torch.cat([h, res.pop()], dim=1), emb, f"up_blocks.{i}.resnets.{j}")
                if kind == "AttnUpBlock2D":
                    h = self.attention(h, f"up_blocks.{i}.attentions.{j}", head or out, self.groups)
            if i < len(boc) - 1:
                h = self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), f"up_blocks.{i}.upsamplers.0.conv")
        return self.conv(F.silu(self.norm(h, "conv_norm_out")), "conv_out")


def time_forward(model, x, t, repeats=20):
    with torch.no_grad():
        for _ in range(3):
            model.forward(x, t)
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model.forward(x, t)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--check", nargs=3, metavar=("X", "T", "EPS"))
    ap.add_argument("--batch", default="1,64,256")
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    peer = UNetPeer(args.model, dev)
    if args.check:
        x = torch.from_numpy(np.load(args.check[0])).to(dev)
        t = torch.from_numpy(np.load(args.check[1])).to(dev)
        ref = np.load(args.check[2])
        with torch.no_grad():
            got = peer.forward(x, t).cpu().numpy()
        err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        print(f"peer check: relative L2 error against {args.check[2]} = {err:.3e}")
        assert err < 1e-4, "the peer does not compute the same function"
    c = peer.c
    size = c["sample_size"]
    print(f"PyTorch {torch.__version__} peer, U-Net forward, input [B, {c['in_channels']}, {size}, {size}], median of 20 after warm-up")
    for mode in ("fp32", "tf32"):
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
        for b in [int(s) for s in args.batch.split(",")]:
            x = torch.randn(b, c["in_channels"], size, size, device=dev)
            t = (torch.arange(b, device=dev) * 37) % 1000
            ms = time_forward(peer, x, t)
            print(f"  {mode} batch {b:4d}: {ms:9.3f} ms per pass, {b * 1000 / ms:10.1f} images/s")


if __name__ == "__main__":
    main()
