"""A Scenic ViViT Flax checkpoint (the paper's release) → the Hugging Face ViViT layout.

Scenic's unfactorised ViViT ("spacetime" attention, token classifier) keeps its parameters as a tree:
    embedding/{kernel (ft, fh, fw, C, D), bias}                  3D-conv tubelet embedding, NTHWC input
    cls (1, 1, D)
    Transformer/posembed_input/pos_embedding (1, 1+N, D)
    Transformer/encoderblock_{i}/LayerNorm_0|1/{scale, bias}     pre-LN, eps 1e-6
    Transformer/encoderblock_{i}/MultiHeadDotProductAttention_*/{query,key,value}/kernel (D, H, Dh), bias (H, Dh)
                                                              .../out/kernel (H, Dh, D), bias (D)
    Transformer/encoderblock_{i}/MlpBlock_0/Dense_0|1/{kernel (in, out), bias}
    Transformer/encoder_norm/{scale, bias}
    output_projection/{kernel (D, K), bias}
The tree sits under optimizer/target (flax.optim train states), params, or at the top.
"""

from __future__ import annotations

import re

import numpy as np

from vivitcli.errors import CheckpointError

_ATTN = re.compile(r"^MultiHeadDotProductAttention(_\d+)?$")


ENCODER_ROOTS = ("Transformer", "SpatialTransformer")


def find_params(tree, where: str) -> dict:
    """The parameter tree (the dict holding 'Transformer', or 'SpatialTransformer' for the factorised encoder)
    inside a restored train state: legacy flax.optim (optimizer/target), current (params), or bare."""
    candidates = [tree]
    seen = 0
    while candidates and seen < 64:
        node = candidates.pop(0)
        seen += 1
        if not isinstance(node, dict):
            continue
        if any(isinstance(node.get(k), dict) for k in ENCODER_ROOTS):
            return node
        for key in ("optimizer", "target", "params", "state", "model"):
            if isinstance(node.get(key), dict):
                candidates.append(node[key])
    raise CheckpointError(f"{where}: no 'Transformer' or 'SpatialTransformer' parameter tree (not a Scenic ViViT "
                          "checkpoint?)")


def _get(tree: dict, path: str, where: str):
    node = tree
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise CheckpointError(f"{where}: parameter '{path}' is missing")
        node = node[part]
    return np.asarray(node)


def _block_attention(block: dict, where: str) -> dict:
    names = [k for k in block if _ATTN.match(k)]
    if len(names) != 1:
        factored = [k for k in block if k.startswith("MultiHeadDotProductAttention_")]
        if any(k.endswith(("_time", "_space")) for k in factored):
            raise CheckpointError(f"{where}: a factorised self-attention ViViT (model 3); vivit runs models 1 "
                                  "(unfactorised) and 2 (factorised encoder), the kinds Scenic released checkpoints "
                                  "of", hint="convert one of the five released checkpoints instead")
        raise CheckpointError(f"{where}: expected one MultiHeadDotProductAttention, found {sorted(block)}")
    return block[names[0]]


def encoder_layers(enc: dict, where: str, name: str) -> list[int]:
    """The block indices of one Scenic encoder, checked to be 0..N-1 (N >= 1)."""
    layers = sorted(int(k.split("_")[1]) for k in enc if re.fullmatch(r"encoderblock_\d+", k))
    if layers != list(range(len(layers))) or not layers:
        raise CheckpointError(f"{where}: {name}/encoderblock_* are not numbered 0..N-1: {layers}")
    return layers


def map_encoder(enc: dict, layers: list[int], dim: int, where: str) -> tuple[dict, int, int]:
    """One Scenic encoder's blocks → HF ViViT layer keys ("encoder.layer.{i}...."), with (heads, MLP width)."""
    out = {}
    heads = head_dim = mlp = None
    for i in layers:
        block = enc[f"encoderblock_{i}"]
        bw = f"{where}/encoderblock_{i}"
        attn = _block_attention(block, bw)
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            k = _get(attn, f"{name}/kernel", bw)  # (D, H, Dh)
            if k.ndim != 3 or k.shape[0] != dim:
                raise CheckpointError(f"{bw}: {name}/kernel has shape {k.shape}, expected ({dim}, heads, head_dim)")
            heads, head_dim = int(k.shape[1]), int(k.shape[2])
            out[p + f"attention.attention.{name}.weight"] = k.reshape(dim, heads * head_dim).T
            out[p + f"attention.attention.{name}.bias"] = _get(attn, f"{name}/bias", bw).reshape(-1)
        o = _get(attn, "out/kernel", bw)  # (H, Dh, D)
        out[p + "attention.output.dense.weight"] = o.reshape(-1, dim).T
        out[p + "attention.output.dense.bias"] = _get(attn, "out/bias", bw)
        for ln, target in (("LayerNorm_0", "layernorm_before"), ("LayerNorm_1", "layernorm_after")):
            out[p + f"{target}.weight"] = _get(block, f"{ln}/scale", bw)
            out[p + f"{target}.bias"] = _get(block, f"{ln}/bias", bw)
        for dense, target in (("Dense_0", "intermediate.dense"), ("Dense_1", "output.dense")):
            out[p + f"{target}.weight"] = _get(block, f"MlpBlock_0/{dense}/kernel", bw).T
            out[p + f"{target}.bias"] = _get(block, f"MlpBlock_0/{dense}/bias", bw)
        mlp = int(out[p + "intermediate.dense.weight"].shape[0])
    if heads * head_dim != dim:
        raise CheckpointError(f"{where}: {heads} heads x {head_dim} differ from width {dim}; the blocks cannot "
                              "hold it")
    return out, heads, mlp


def convert(tree, *, image_size: int = 224, num_frames: int | None = None,
            where: str = "checkpoint") -> tuple[dict, dict]:
    """Flax param tree → (HF config dict, HF state dict of numpy arrays in float32 or their own dtype)."""
    params = find_params(tree, where)
    if "Transformer" not in params:
        raise CheckpointError(f"{where}: not an unfactorised (model 1) ViViT: no 'Transformer' tree")
    if "pre_logits" in params and params["pre_logits"]:
        raise CheckpointError(f"{where}: a representation layer (pre_logits) that HF ViViT cannot hold")
    if "cls" not in params:
        raise CheckpointError(f"{where}: an unfactorised ViViT without a 'cls' token: a global-average-pool model 1 or "
                              "a factorised dot-product attention model (model 4, whose tree looks the same); "
                              "vivit runs model 1 with a class token and the factorised encoder (model 2)",
                              hint="the five released ViViT checkpoints are of those kinds")
    enc = params["Transformer"]
    kernel = _get(params, "embedding/kernel", where)
    if kernel.ndim != 5:
        raise CheckpointError(f"{where}: embedding/kernel has shape {kernel.shape}; a 3D-conv tubelet "
                              "embedding (ft, fh, fw, C, D) is the only supported input encoding")
    ft, fh, fw, channels, dim = (int(s) for s in kernel.shape)
    pos = _get(enc, "posembed_input/pos_embedding", where)
    tokens = int(pos.shape[1]) - 1
    if image_size % fh or image_size % fw:
        raise CheckpointError(f"{where}: image size {image_size} does not tile into {fh}x{fw} patches",
                              hint="set --image-size")
    per_frame = (image_size // fh) * (image_size // fw)
    if tokens % per_frame:
        raise CheckpointError(f"{where}: {tokens} position embeddings do not fit {image_size} px frames "
                              f"({per_frame} patches each)", hint="set --image-size")
    frames = tokens // per_frame * ft
    if num_frames is not None and num_frames != frames:
        raise CheckpointError(f"{where}: the position table holds {frames} frames at {image_size} px, "
                              f"not {num_frames}")

    layers = encoder_layers(enc, where, "Transformer")
    out = {
        "vivit.embeddings.cls_token": _get(params, "cls", where).reshape(1, 1, dim),
        "vivit.embeddings.position_embeddings": pos,
        # Flax conv kernels are (t, h, w, in, out); torch Conv3d wants (out, in, t, h, w).
        "vivit.embeddings.patch_embeddings.projection.weight": np.transpose(kernel, (4, 3, 0, 1, 2)),
        "vivit.embeddings.patch_embeddings.projection.bias": _get(params, "embedding/bias", where),
        "vivit.layernorm.weight": _get(enc, "encoder_norm/scale", where),
        "vivit.layernorm.bias": _get(enc, "encoder_norm/bias", where),
    }
    blocks, heads, mlp = map_encoder(enc, layers, dim, f"{where}: Transformer")
    out.update({"vivit." + k: v for k, v in blocks.items()})

    config = {
        "model_type": "vivit",
        "architectures": ["VivitForVideoClassification"],
        "image_size": image_size, "num_frames": frames, "tubelet_size": [ft, fh, fw],
        "num_channels": channels, "hidden_size": dim, "num_hidden_layers": len(layers),
        "num_attention_heads": heads, "intermediate_size": mlp,
        # flax.linen.gelu defaults to the tanh approximation, which HF ViViT calls gelu_fast.
        "hidden_act": "gelu_fast", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02, "layer_norm_eps": 1e-6, "qkv_bias": True,
    }
    if "output_projection" in params:
        out["classifier.weight"] = _get(params, "output_projection/kernel", where).T
        out["classifier.bias"] = _get(params, "output_projection/bias", where)
        config["num_labels"] = int(out["classifier.weight"].shape[0])
    else:
        config["num_labels"] = 0
    return config, {k: np.ascontiguousarray(v) for k, v in out.items()}
