"""Transformer pieces shared by ViViT and VideoMAE: tubelet embedding, attention, MLP, pre-LN block.

Both architectures use the same pre-LN block (x + attn(ln1(x)), then x + mlp(ln2(x))); they differ in
activation, LayerNorm eps and attention biases, which come from ModelConfig.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ATTN_IMPLS = ("eager", "sdpa")


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


# The remaining activations of transformers' ACT2FN, written with the same formula (and constants) as
# transformers.activations so they agree to float32 rounding (tests/test_checkpoint_config.py compares them).
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def _gelu_python(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _gelu_tanh_python(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * torch.pow(x, 3.0))))


def _gelu_accurate(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * torch.pow(x, 3))))


def _gelu_10(x: torch.Tensor) -> torch.Tensor:
    return torch.clip(F.gelu(x), -10, 10)


def _laplace(x: torch.Tensor, mu: float = 0.707107, sigma: float = 0.282095) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf((x - mu).div(sigma * math.sqrt(2.0))))


def _relu2(x: torch.Tensor) -> torch.Tensor:
    return torch.square(F.relu(x))


def _sqrt_softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x).sqrt()


def _linear(x: torch.Tensor) -> torch.Tensor:
    return x


# transformers' ACT2FN names -> functions. gelu_fast / gelu_new are the tanh approximation; PyTorch's fused
# kernel matches transformers' formula to float32 rounding (the constant is sqrt(2/pi) to 10 digits there).
# Not here: prelu and xielu, which carry learned parameters that no ViViT / VideoMAE checkpoint stores.
ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_fast": _gelu_tanh,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_python": _gelu_python,
    "gelu_python_tanh": _gelu_tanh_python,
    "gelu_accurate": _gelu_accurate,
    "gelu_10": _gelu_10,
    "quick_gelu": _quick_gelu,
    "hardswish": F.hardswish,
    "laplace": _laplace,
    "leaky_relu": F.leaky_relu,              # nn.LeakyReLU() default slope 0.01
    "linear": _linear,
    "mish": F.mish,
    "relu": F.relu,
    "relu2": _relu2,
    "relu6": F.relu6,
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "swish": F.silu,
    "sqrtsoftplus": _sqrt_softplus,
    "tanh": torch.tanh,
}


def activation(name: str):
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unsupported activation {name!r} (supported: {', '.join(ACTIVATIONS)})") from None


class TubeletEmbed(nn.Module):
    """(B, T, C, H, W) → (B, N, D) with N = T/t · H/p · W/p tokens in (t, h, w) raster order.

    The weight keeps the Conv3d layout (D, C, t, p, p) of the checkpoint; since kernel == stride the
    convolution is one matmul over non-overlapping tubelets, which is what runs (it avoids the NCDHW
    transpose of the input and is faster than Conv3d on CPU).
    """

    def __init__(self, in_channels: int, dim: int, tubelet: tuple[int, int, int]):
        super().__init__()
        self.tubelet = tuple(tubelet)
        self.weight = nn.Parameter(torch.empty(dim, in_channels, *self.tubelet))
        self.bias = nn.Parameter(torch.zeros(dim))

    def grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        t, p, q = self.tubelet
        return num_frames // t, height // p, width // q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, frames, c, h, w = x.shape
        t, p, q = self.tubelet
        gt, gh, gw = frames // t, h // p, w // q
        # Conv3d drops the remainder rows/frames that do not fill a tubelet; so do we.
        x = x[:, : gt * t, :, : gh * p, : gw * q]
        x = x.reshape(b, gt, t, c, gh, p, gw, q)
        x = x.permute(0, 1, 4, 6, 3, 2, 5, 7)                 # (B, gt, gh, gw, C, t, p, q)
        x = x.reshape(b, gt * gh * gw, c * t * p * q)         # (B, N, C·t·p·q), Conv3d weight order
        return F.linear(x, self.weight.reshape(self.weight.shape[0], -1), self.bias)


class Attention(nn.Module):
    """Multi-head self-attention with q/k/v stored as one fused linear; `impl` ("eager" | "sdpa") is switchable per instance.

    Eager computes softmax in float32 whatever the model dtype (the reference path); sdpa calls
    torch.nn.functional.scaled_dot_product_attention.
    """

    def __init__(self, dim: int, num_heads: int, bias: bool = True, impl: str = "sdpa"):
        super().__init__()
        if impl not in ATTN_IMPLS:
            raise ValueError(f"attention implementation must be one of {ATTN_IMPLS}, got {impl!r}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim)
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        w, bias = self.qkv.weight, self.qkv.bias
        # Three products over row slices of the fused weight (views, no copy) rather than one (B, N, 3D)
        # product: each result is contiguous, and CPU flash attention reads such q/k/v faster than the
        # stride-3D views of a fused output (measured on VideoMAE-B: the fused form was ~4% slower).
        q, k, v = (
            F.linear(x, w[i * d:(i + 1) * d], None if bias is None else bias[i * d:(i + 1) * d])
            .view(b, n, self.num_heads, self.head_dim).transpose(1, 2)     # (B, H, N, hd)
            for i in range(3)
        )
        if self.impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            # Scaling q (N·hd values) instead of the scores (N·N) saves a full pass over the largest tensor.
            scores = torch.matmul(q * self.scale, k.transpose(-2, -1))         # (B, H, N, N)
            if scores.dtype == torch.bfloat16 and scores.device.type == "cpu":
                # PyTorch's CPU softmax for bfloat16 computes max, exp and sum in float32 and rounds only
                # the output, i.e. it equals softmax(dtype=float32).to(bfloat16) (checked bit for bit at
                # 33 and 1568 tokens) at a third of the cost of materialising float32 probabilities.
                probs = torch.softmax(scores, dim=-1)
            else:
                probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
            out = torch.matmul(probs, v)
        out = out.transpose(1, 2).reshape(b, n, d)            # (B, N, H·hd)
        return self.proj(out)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, act: str, eps: float, qkv_bias: bool,
                 attn_impl: str = "sdpa"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, bias=qkv_bias, impl=attn_impl)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_hidden, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def interpolate_pos_table(table: torch.Tensor, src_grid: tuple[int, int, int],
                          dst_grid: tuple[int, int, int]) -> torch.Tensor:
    """Resample a (N, D) position table laid out over `src_grid` (t, h, w) to `dst_grid`.

    Space: bicubic per time slice (align_corners=False, the ViT convention); time: linear
    (align_corners=False), so each new time slot takes the embedding at its centre on the old time axis.
    Computed in float32 whatever the table's dtype. A table resampled to its own grid comes back equal
    (the cubic and linear kernels put weight exactly 1 on the source sample at scale 1).
    """
    st, sh, sw = src_grid
    dt, dh, dw = dst_grid
    n, d = table.shape
    if n != st * sh * sw:
        raise ValueError(f"position table has {n} rows, grid {src_grid} needs {st * sh * sw}")
    x = table.float().reshape(st, sh, sw, d).permute(0, 3, 1, 2)                # (t, D, h, w)
    if (sh, sw) != (dh, dw):
        x = F.interpolate(x, size=(dh, dw), mode="bicubic", align_corners=False)
    if st != dt:
        x = x.permute(1, 2, 3, 0).reshape(1, d * dh * dw, st)                  # (1, D·h·w, t)
        x = F.interpolate(x, size=dt, mode="linear", align_corners=False)
        x = x.reshape(d, dh, dw, dt).permute(3, 0, 1, 2)                        # (t, D, h, w)
    return x.permute(0, 2, 3, 1).reshape(dt * dh * dw, d).to(table.dtype)


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's fixed table: float64 angles pos / 10000^(2⌊j/2⌋/dim), sin on even j, cos on odd j.

    Same arithmetic as transformers' get_sinusoid_encoding_table (numpy float64, then float32), so the
    result is bit-identical.
    """
    import numpy as np

    pos = np.arange(num_positions, dtype=np.float64)[:, None]
    denom = np.power(10000, 2 * (np.arange(dim) // 2) / dim)[None, :]
    angles = pos / denom
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return torch.from_numpy(angles.astype(np.float32))


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Random init for build_model: normal weights clipped at 2 std (a cheap truncated normal), zero
    biases, unit LayerNorms."""
    def normal_(t: torch.Tensor, sd: float) -> None:
        t.normal_(0.0, sd).clamp_(-2 * sd, 2 * sd)

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                normal_(m.weight, std)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, TubeletEmbed):
                normal_(m.weight, math.prod(m.weight.shape[1:]) ** -0.5)
                m.bias.zero_()
