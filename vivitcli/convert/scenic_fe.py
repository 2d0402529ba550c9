"""A Scenic ViViT Factorised Encoder (model 2) Flax tree → vivitcli's `vivit_fe` layout (models/vivit_fe.py).

Scenic's SpaceTimeViViT keeps (D = hidden size):
    embedding/{kernel (ft, fh, fw, C, D) — or (fh, fw, C, D) for 'temporal_sampling' —, bias}
    cls_SpatialTransformer (1, 1, D), cls_TemporalTransformer (1, 1, D)       (absent for the "gap" classifier)
    SpatialTransformer/posembed_input/pos_embedding (1, [1+]h·w, D)           one table for every time slot
    SpatialTransformer/encoderblock_{i}/...  SpatialTransformer/encoder_norm   blocks as in model 1
    TemporalTransformer/posembed_input/pos_embedding (1, [1+]T', D)
    TemporalTransformer/encoderblock_{j}/... TemporalTransformer/encoder_norm  its own depth, heads and MLP
    output_projection/{kernel (D, K), bias}
Every size is read from the tree; only the image size (the spatial table's h·w) needs --image-size when it is
not 224.
"""

from __future__ import annotations

import numpy as np

from vivitcli.convert.scenic_vivit import _get, encoder_layers, find_params, map_encoder
from vivitcli.errors import CheckpointError
from vivitcli.models.vivit_fe import MODEL_TYPE, PREFIX


def is_factorised_encoder(params: dict) -> bool:
    return isinstance(params.get("SpatialTransformer"), dict)


def embedding_kernel(params: dict, where: str) -> np.ndarray:
    """(ft, fh, fw, C, D): a 2D patch kernel (temporal_sampling) is a tubelet one frame deep."""
    kernel = _get(params, "embedding/kernel", where)
    if kernel.ndim == 4:
        kernel = kernel[None]
    if kernel.ndim != 5:
        raise CheckpointError(f"{where}: embedding/kernel has shape {kernel.shape}, expected (t, h, w, C, D) or "
                              "(h, w, C, D)")
    return kernel


def convert(tree, *, image_size: int = 224, num_frames: int | None = None,
            where: str = "checkpoint") -> tuple[dict, dict]:
    """Flax param tree → (config dict, state dict of numpy arrays in the on-disk vivit_fe layout)."""
    params = find_params(tree, where)
    if not is_factorised_encoder(params) or not isinstance(params.get("TemporalTransformer"), dict):
        raise CheckpointError(f"{where}: not a factorised-encoder ViViT (needs SpatialTransformer and "
                              "TemporalTransformer trees)")
    if params.get("pre_logits"):
        raise CheckpointError(f"{where}: a representation layer (pre_logits) that vivit_fe does not hold",
                              hint="the released checkpoints have none")
    token = "cls_SpatialTransformer" in params
    if token != ("cls_TemporalTransformer" in params):
        raise CheckpointError(f"{where}: only one of cls_SpatialTransformer / cls_TemporalTransformer is present")
    kernel = embedding_kernel(params, where)
    ft, fh, fw, channels, dim = (int(s) for s in kernel.shape)
    spatial, temporal = params["SpatialTransformer"], params["TemporalTransformer"]
    s_pos = _get(spatial, "posembed_input/pos_embedding", where)
    t_pos = _get(temporal, "posembed_input/pos_embedding", where)
    for name, table in (("SpatialTransformer", s_pos), ("TemporalTransformer", t_pos)):
        if table.ndim != 3 or table.shape[0] != 1 or table.shape[2] != dim or table.shape[1] <= int(token):
            raise CheckpointError(f"{where}: {name}/posembed_input/pos_embedding has shape {table.shape}")
    if image_size % fh or image_size % fw:
        raise CheckpointError(f"{where}: image size {image_size} does not tile into {fh}x{fw} patches",
                              hint="set --image-size")
    patches = (image_size // fh) * (image_size // fw)
    if s_pos.shape[1] - int(token) != patches:
        raise CheckpointError(f"{where}: the spatial position table holds {s_pos.shape[1] - int(token)} patches, "
                              f"not the {patches} of {image_size} px frames", hint="set --image-size")
    frames = (int(t_pos.shape[1]) - int(token)) * ft
    if num_frames is not None and num_frames != frames:
        raise CheckpointError(f"{where}: the temporal position table holds {frames} frames, not {num_frames}")

    s_layers = encoder_layers(spatial, where, "SpatialTransformer")
    t_layers = encoder_layers(temporal, where, "TemporalTransformer")
    s_blocks, s_heads, s_mlp = map_encoder(spatial, s_layers, dim, f"{where}: SpatialTransformer")
    t_blocks, t_heads, t_mlp = map_encoder(temporal, t_layers, dim, f"{where}: TemporalTransformer")
    out = {
        # Flax conv kernels are (t, h, w, in, out); the torch Conv3d layout is (out, in, t, h, w).
        "embeddings.patch_embeddings.projection.weight": np.transpose(kernel, (4, 3, 0, 1, 2)),
        "embeddings.patch_embeddings.projection.bias": _get(params, "embedding/bias", where),
        "spatial.position_embeddings": s_pos, "temporal.position_embeddings": t_pos,
        "spatial.layernorm.weight": _get(spatial, "encoder_norm/scale", where),
        "spatial.layernorm.bias": _get(spatial, "encoder_norm/bias", where),
        "temporal.layernorm.weight": _get(temporal, "encoder_norm/scale", where),
        "temporal.layernorm.bias": _get(temporal, "encoder_norm/bias", where),
    }
    if token:
        out["spatial.cls_token"] = _get(params, "cls_SpatialTransformer", where).reshape(1, 1, dim)
        out["temporal.cls_token"] = _get(params, "cls_TemporalTransformer", where).reshape(1, 1, dim)
    out.update({"spatial." + k: v for k, v in s_blocks.items()})
    out.update({"temporal." + k: v for k, v in t_blocks.items()})
    out = {PREFIX + k: v for k, v in out.items()}
    config = {
        "model_type": MODEL_TYPE,
        "architectures": ["VivitFactorisedEncoderForVideoClassification"],
        "image_size": image_size, "num_frames": frames, "tubelet_size": [ft, fh, fw], "num_channels": channels,
        "hidden_size": dim, "num_hidden_layers": len(s_layers), "num_attention_heads": s_heads,
        "intermediate_size": s_mlp, "num_temporal_layers": len(t_layers),
        "temporal_num_attention_heads": t_heads, "temporal_intermediate_size": t_mlp,
        "classifier": "token" if token else "gap",
        # flax.linen.gelu defaults to the tanh approximation (gelu_fast in transformers' names).
        "hidden_act": "gelu_fast", "layer_norm_eps": 1e-6, "qkv_bias": True,
    }
    if "output_projection" in params:
        out["classifier.weight"] = _get(params, "output_projection/kernel", where).T
        out["classifier.bias"] = _get(params, "output_projection/bias", where)
        config["num_labels"] = int(out["classifier.weight"].shape[0])
    else:
        config["architectures"] = ["VivitFactorisedEncoderModel"]
        config["num_labels"] = 0
    if not token:
        config.setdefault("_notes", []).append(
            "no CLS tokens: read as Scenic's 'gap' classifier (token means); 'gmp'/'gsp' trees look the same")
    return config, {k: np.ascontiguousarray(v) for k, v in out.items()}
