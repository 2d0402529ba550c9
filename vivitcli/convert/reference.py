"""Forward passes written directly over the ORIGINAL parameter layouts, for `vivit convert --verify`.

They share nothing with the key mappings or with vivitcli.models: a wrong transpose, split or rename in the
converter shows up as a logit difference between these and the converted checkpoint. Eager float32 math on
CPU, batch-first pixels (B, T, C, H, W) like every other entry point.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _attend(q, k, v):
    """q, k, v: (B, heads, N, Dh) → (B, N, heads·Dh), softmax in float32."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    out = scores.softmax(dim=-1) @ v
    b, h, n, d = out.shape
    return out.transpose(1, 2).reshape(b, n, h * d)


# ---------------------------------------------------------------- VideoMAE (MCG-NJU release layout)

def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """VideoMAE's get_sinusoid_encoding_table: sin on even channels, cos on odd ones. (1, N, D)"""
    pos = torch.arange(n_position, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()[None]


def _videomae_blocks(x, sd, prefix, heads, eps):
    i = 0
    while f"{prefix}blocks.{i}.attn.qkv.weight" in sd:
        p = f"{prefix}blocks.{i}."
        h = F.layer_norm(x, x.shape[-1:], sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps)
        qkv_w = sd[p + "attn.qkv.weight"]
        if p + "attn.q_bias" in sd:
            qb, vb = sd[p + "attn.q_bias"], sd[p + "attn.v_bias"]
            qkv = F.linear(h, qkv_w, torch.cat([qb, torch.zeros_like(vb), vb]))
        else:
            qkv = F.linear(h, qkv_w)
        b, n, _ = qkv.shape
        qkv = qkv.reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        a = _attend(qkv[0], qkv[1], qkv[2])
        x = x + F.linear(a, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        h = F.layer_norm(x, x.shape[-1:], sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
                     sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        x = x + h
        i += 1
    return x


@torch.no_grad()
def videomae_original(sd: dict, pixel_values: torch.Tensor, *, num_heads: int, eps: float = 1e-6) -> dict:
    """The release's VisionTransformer on (B, T, C, H, W).

    Returns {'logits': (B, K)} for a fine-tuned model (mean → fc_norm → head, or norm → token 0 → head),
    {'features': (B, N, D)} (after the encoder norm) for a pre-training checkpoint's encoder, and
    {'pooled': (B, D)}: what the head would see.
    """
    sd = {k: v.to(device=pixel_values.device, dtype=torch.float32) for k, v in sd.items()}
    prefix = "encoder." if "encoder.patch_embed.proj.weight" in sd else ""
    x = F.conv3d(pixel_values.permute(0, 2, 1, 3, 4).float(), sd[prefix + "patch_embed.proj.weight"],
                 sd[prefix + "patch_embed.proj.bias"], stride=sd[prefix + "patch_embed.proj.weight"].shape[2:])
    x = x.flatten(2).transpose(1, 2)  # (B, N, D)
    x = x + sinusoid_table(x.shape[1], x.shape[2]).to(x.device)
    x = _videomae_blocks(x, sd, prefix, num_heads, eps)
    out = {}
    if prefix + "norm.weight" in sd:
        x = F.layer_norm(x, x.shape[-1:], sd[prefix + "norm.weight"], sd[prefix + "norm.bias"], eps)
    out["features"] = x
    if "fc_norm.weight" in sd:
        pooled = F.layer_norm(x.mean(1), x.shape[-1:], sd["fc_norm.weight"], sd["fc_norm.bias"], eps)
    elif prefix:
        pooled = x.mean(1)
    else:
        pooled = x[:, 0]
    out["pooled"] = pooled
    if "head.weight" in sd:
        out["logits"] = F.linear(pooled, sd["head.weight"], sd["head.bias"])
    return out


# ---------------------------------------------------------------- ViViT (Scenic Flax tree)

def _to_torch(node, device):
    """The Flax tree with float32 tensor leaves on `device` (numpy leaves are read-only views of the file)."""
    if isinstance(node, dict):
        return {k: _to_torch(v, device) for k, v in node.items()}
    if hasattr(node, "dtype") and hasattr(node, "shape"):
        return torch.as_tensor(node.copy()).to(device=device, dtype=torch.float32)
    return node


def _flax_ln(x, node, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], node["scale"], node["bias"], eps)


def _flax_dense(x, node):
    return x @ node["kernel"] + node["bias"]


def _flax_encoder(x, enc):
    """posembed_input + encoderblock_0.. + encoder_norm of one Scenic Encoder, on (B, N, D)."""
    x = x + enc["posembed_input"]["pos_embedding"]
    i = 0
    while f"encoderblock_{i}" in enc:
        blk = enc[f"encoderblock_{i}"]
        attn = next(v for k, v in blk.items() if k.startswith("MultiHeadDotProductAttention"))
        y = _flax_ln(x, blk["LayerNorm_0"])
        q, k, v = (torch.einsum("bnd,dhk->bhnk", y, attn[n]["kernel"]) + attn[n]["bias"][None, :, None]
                   for n in ("query", "key", "value"))
        scores = torch.einsum("bhqk,bhnk->bhqn", q, k) / math.sqrt(q.shape[-1])
        o = torch.einsum("bhqn,bhnk->bqhk", scores.softmax(-1), v)
        x = x + torch.einsum("bqhk,hkd->bqd", o, attn["out"]["kernel"]) + attn["out"]["bias"]
        y = _flax_ln(x, blk["LayerNorm_1"])
        mlp = blk["MlpBlock_0"]
        y = _flax_dense(F.gelu(_flax_dense(y, mlp["Dense_0"]), approximate="tanh"), mlp["Dense_1"])
        x = x + y
        i += 1
    return _flax_ln(x, enc["encoder_norm"])


def _flax_embed(pixel_values, embedding):
    """Scenic's patch embedding the Flax way: NTHWC pixels, non-overlapping patches contracted with the kernel.

    A (ft, fh, fw, C, D) kernel is the 3D-conv tubelet embedding; an (fh, fw, C, D) one embeds every frame
    with 2D patches ('temporal_sampling'). Returns (B, T', h, w, D).
    """
    kernel = embedding["kernel"]
    x = pixel_values.float().permute(0, 1, 3, 4, 2)  # (B, T, H, W, C)
    b, t, h, w, c = x.shape
    if kernel.ndim == 4:
        fh, fw, _, d = kernel.shape
        x = x.reshape(b, t, h // fh, fh, w // fw, fw, c)
        x = torch.einsum("nTHbWcC,bcCD->nTHWD", x, kernel)
    else:
        ft, fh, fw, _, d = kernel.shape
        x = x.reshape(b, t // ft, ft, h // fh, fh, w // fw, fw, c)
        x = torch.einsum("nTaHbWcC,abcCD->nTHWD", x, kernel)  # a, b, c: offsets inside a tubelet
    return x + embedding["bias"]


@torch.no_grad()
def scenic_vivit(params: dict, pixel_values: torch.Tensor) -> dict:
    """Scenic's ViViT (spacetime attention, token classifier) over its own Flax parameter tree.

    Returns {'logits'} when the tree has output_projection, {'features'} and {'pooled'}.
    """
    params = _to_torch({k: params[k] for k in ("embedding", "cls", "Transformer", "output_projection")
                        if k in params}, pixel_values.device)
    x = _flax_embed(pixel_values, params["embedding"])
    b, d = x.shape[0], x.shape[-1]
    x = x.reshape(b, -1, d)
    cls = params["cls"].reshape(1, 1, d).expand(b, 1, d)
    x = _flax_encoder(torch.cat([cls, x], dim=1), params["Transformer"])
    out = {"features": x, "pooled": x[:, 0]}
    if "output_projection" in params:
        out["logits"] = _flax_dense(x[:, 0], params["output_projection"])
    return out


@torch.no_grad()
def scenic_vivit_fe(params: dict, pixel_values: torch.Tensor) -> dict:
    """Scenic's SpaceTimeViViT (factorised encoder, model 2) over its own Flax parameter tree.

    Following Scenic's vit_body: per time slot (a loop here, as jax.vmap maps it) [cls_SpatialTransformer] +
    patches → SpatialTransformer → token 0 (or the mean for "gap"); then [cls_TemporalTransformer] + the slot
    vectors → TemporalTransformer → token 0 (or mean) → output_projection.
    """
    keys = ("embedding", "cls_SpatialTransformer", "cls_TemporalTransformer", "SpatialTransformer",
            "TemporalTransformer", "output_projection")
    params = _to_torch({k: params[k] for k in keys if k in params}, pixel_values.device)
    x = _flax_embed(pixel_values, params["embedding"])               # (B, T', h, w, D)
    b, t, d = x.shape[0], x.shape[1], x.shape[-1]

    def body(seq, name):
        if f"cls_{name}" in params:
            cls = params[f"cls_{name}"].reshape(1, 1, d).expand(seq.shape[0], 1, d)
            seq = _flax_encoder(torch.cat([cls, seq], dim=1), params[name])
            return seq, seq[:, 0]
        seq = _flax_encoder(seq, params[name])
        return seq, seq.mean(dim=1)

    slots = torch.stack([body(x[:, i].reshape(b, -1, d), "SpatialTransformer")[1] for i in range(t)], dim=1)
    features, pooled = body(slots, "TemporalTransformer")
    out = {"features": features, "pooled": pooled}
    if "output_projection" in params:
        out["logits"] = _flax_dense(pooled, params["output_projection"])
    return out
