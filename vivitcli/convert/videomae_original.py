"""The original VideoMAE release (MCG-NJU/VideoMAE .pth files) → the Hugging Face VideoMAE layout.

Original keys (modeling_finetune.py / modeling_pretrain.py):
    patch_embed.proj.{weight,bias}                 Conv3d (D, 3, tubelet, p, p)
    blocks.{i}.norm1 / norm2                       LayerNorm (eps 1e-6 in the release's model builders)
    blocks.{i}.attn.qkv.weight                     fused (3·D, D); no bias tensor of its own
    blocks.{i}.attn.q_bias / v_bias                the k bias is a fixed zero
    blocks.{i}.attn.proj / mlp.fc1 / mlp.fc2
    fc_norm (mean pooling) or norm (token 0), head
Pre-training checkpoints prefix the encoder with `encoder.` (its `norm` is always there, `head` is an
Identity) and add `encoder_to_decoder`, `mask_token` and a `decoder.` with the same block layout,
`decoder.norm` and `decoder.head`. Position tables are fixed sinusoids, not stored.
"""

from __future__ import annotations

import re

from vivitcli.errors import CheckpointError

_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_BLOCK_PARTS = {
    "norm1.weight": "layernorm_before.weight", "norm1.bias": "layernorm_before.bias",
    "norm2.weight": "layernorm_after.weight", "norm2.bias": "layernorm_after.bias",
    "attn.q_bias": "attention.attention.q_bias", "attn.v_bias": "attention.attention.v_bias",
    "attn.proj.weight": "attention.output.dense.weight", "attn.proj.bias": "attention.output.dense.bias",
    "mlp.fc1.weight": "intermediate.dense.weight", "mlp.fc1.bias": "intermediate.dense.bias",
    "mlp.fc2.weight": "output.dense.weight", "mlp.fc2.bias": "output.dense.bias",
}
# Parts of the release that HF's VideoMAE cannot represent: refuse rather than drop them silently.
_UNSUPPORTED = {
    "gamma_1": "layer scale (init_values > 0)", "gamma_2": "layer scale (init_values > 0)",
    "pos_embed": "a learned position table (use_learnable_pos_emb)", "cls_token": "a class token",
    "attn.qkv.bias": "a full qkv bias", "attn.k_bias": "a k bias",
}
WRAPPERS = ("model", "module", "state_dict", "model_state")


def unwrap(obj, path) -> dict:
    """The state dict inside a release file: {'model': sd}, {'module': sd} or the bare sd."""
    for _ in range(2):
        if isinstance(obj, dict) and not _is_state_dict(obj):
            inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not (isinstance(obj, dict) and _is_state_dict(obj)):
        keys = ", ".join(sorted(map(str, obj))[:6]) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path}: no tensor state dict found (top level: {keys})")
    sd = {k: v for k, v in obj.items() if _is_tensor(v)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _is_tensor(v) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype")


def _is_state_dict(d: dict) -> bool:
    return bool(d) and sum(_is_tensor(v) for v in d.values()) >= max(1, len(d) // 2)


def is_videomae_original(sd: dict) -> bool:
    keys = set(sd)
    return any(k in keys for k in ("patch_embed.proj.weight", "encoder.patch_embed.proj.weight")) and any(
        k.endswith("attn.qkv.weight") for k in keys)


def _split_blocks(sd: dict, prefix: str):
    """{'<prefix>blocks.i.part': t} → {i: {part: t}}; the rest of `prefix` keys returned apart."""
    blocks: dict[int, dict] = {}
    rest = {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        m = _BLOCK.match(name)
        if m:
            blocks.setdefault(int(m.group(1)), {})[m.group(2)] = value
        else:
            rest[name] = value
    if sorted(blocks) != list(range(len(blocks))):
        raise CheckpointError(f"{prefix or 'encoder '}blocks are not numbered 0..N-1: {sorted(blocks)}")
    return blocks, rest


def _map_block(parts: dict, out_prefix: str, where: str) -> dict:
    out = {}
    for part, value in parts.items():
        for bad, why in _UNSUPPORTED.items():
            if part == bad or part.startswith(bad + "."):
                raise CheckpointError(f"{where}: {part} is {why}, which the Hugging Face VideoMAE cannot hold")
        if part == "attn.qkv.weight":
            # Fused rows are [q; k; v], each (all_head_dim, D).
            if value.shape[0] % 3:
                raise CheckpointError(f"{where}: attn.qkv.weight has {value.shape[0]} rows, not 3·D")
            q, k, v = value.chunk(3, dim=0)
            out[out_prefix + "attention.attention.query.weight"] = q
            out[out_prefix + "attention.attention.key.weight"] = k
            out[out_prefix + "attention.attention.value.weight"] = v
        elif part in _BLOCK_PARTS:
            out[out_prefix + _BLOCK_PARTS[part]] = value
        else:
            raise CheckpointError(f"{where}: unexpected key '{part}'")
    return out


def _heads(dim: int, head_dim: int, num_heads: int | None, what: str) -> int:
    if num_heads:
        if dim % num_heads:
            raise CheckpointError(f"{what} width {dim} is not divisible by {num_heads} heads")
        return num_heads
    if dim % head_dim:
        raise CheckpointError(f"{what} width {dim} is not a multiple of head size {head_dim}",
                              hint="pass --num-heads")
    return dim // head_dim


def convert(sd: dict, *, num_frames: int = 16, image_size: int = 224, head_dim: int = 64,
            num_heads: int | None = None, decoder_num_heads: int | None = None,
            where: str = "checkpoint") -> tuple[dict, dict]:
    """Original VideoMAE state dict → (HF config dict, HF state dict). Tensors are not copied."""
    pretraining = any(k.startswith("encoder.") for k in sd)
    enc = "encoder." if pretraining else ""
    blocks, rest = _split_blocks(sd, enc)
    if not blocks or "patch_embed.proj.weight" not in rest:
        raise CheckpointError(f"{where}: no {enc}patch_embed.proj.weight or {enc}blocks.* keys")

    proj = rest.pop("patch_embed.proj.weight")
    dim, channels, tubelet, ph, pw = proj.shape
    if ph != pw:
        raise CheckpointError(f"{where}: non-square patches {ph}x{pw} are not supported by HF VideoMAE")
    if num_frames % tubelet or image_size % ph:
        raise CheckpointError(
            f"{where}: {num_frames} frames of {image_size} px do not tile into tubelets of {tubelet}x{ph}x{pw}",
            hint="set --num-frames / --image-size")
    fc1 = blocks[0].get("mlp.fc1.weight")
    if fc1 is None or "attn.qkv.weight" not in blocks[0]:
        raise CheckpointError(f"{where}: {enc}blocks.0 lacks attn.qkv.weight or mlp.fc1.weight")
    all_head_dim = blocks[0]["attn.qkv.weight"].shape[0] // 3
    if all_head_dim != dim:
        raise CheckpointError(f"{where}: attention width {all_head_dim} differs from model width {dim}"
                              " (attn_head_dim); HF VideoMAE cannot hold it")
    qv_bias = "attn.q_bias" in blocks[0]

    out = {
        "videomae.embeddings.patch_embeddings.projection.weight": proj,
        "videomae.embeddings.patch_embeddings.projection.bias": rest.pop("patch_embed.proj.bias"),
    }
    for i, parts in blocks.items():
        out.update(_map_block(parts, f"videomae.encoder.layer.{i}.", f"{where}: {enc}blocks.{i}"))

    use_mean_pooling = "fc_norm.weight" in rest
    for name, target in (("norm", "videomae.layernorm"), ("fc_norm", "fc_norm"), ("head", "classifier")):
        for suffix in ("weight", "bias"):
            if f"{name}.{suffix}" in rest:
                out[f"{target}.{suffix}"] = rest.pop(f"{name}.{suffix}")
    if use_mean_pooling and "videomae.layernorm.weight" in out:
        raise CheckpointError(f"{where}: both norm and fc_norm are present")
    for key in rest:
        base = key.split(".")[0]
        why = _UNSUPPORTED.get(base, "not part of the VideoMAE layout")
        raise CheckpointError(f"{where}: {enc}{key} is {why}; HF VideoMAE cannot hold it")

    config = {
        "model_type": "videomae",
        "image_size": image_size, "patch_size": int(ph), "num_channels": int(channels),
        "num_frames": num_frames, "tubelet_size": int(tubelet),
        "hidden_size": int(dim), "num_hidden_layers": len(blocks),
        "num_attention_heads": _heads(int(dim), head_dim, num_heads, "encoder"),
        "intermediate_size": int(fc1.shape[0]), "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
        # The release builds every LayerNorm with eps 1e-6 (HF's VideoMAE default is 1e-12).
        "layer_norm_eps": 1e-6,
        "qkv_bias": qv_bias, "qv_bias": qv_bias,
        "use_mean_pooling": use_mean_pooling,
        "norm_pix_loss": True,
    }

    if pretraining:
        if "classifier.weight" in out:
            raise CheckpointError(f"{where}: a pre-training checkpoint with a classification head")
        config["use_mean_pooling"] = False
        out.update(_convert_decoder(sd, config, head_dim, decoder_num_heads, where))
        config["architectures"] = ["VideoMAEForPreTraining"]
    else:
        if "classifier.weight" not in out:
            raise CheckpointError(f"{where}: no head.weight (a fine-tuned checkpoint needs its classifier)",
                                  hint="pre-training checkpoints keep their encoder under 'encoder.'")
        config["architectures"] = ["VideoMAEForVideoClassification"]
        config["num_labels"] = int(out["classifier.weight"].shape[0])
    return config, out


def _convert_decoder(sd: dict, config: dict, head_dim: int, decoder_num_heads, where: str) -> dict:
    other = {k: v for k, v in sd.items() if not k.startswith(("encoder.", "decoder."))}
    blocks, rest = _split_blocks(sd, "decoder.")
    if "encoder_to_decoder.weight" not in other or "mask_token" not in other or not blocks:
        raise CheckpointError(f"{where}: a pre-training checkpoint needs encoder_to_decoder, mask_token and "
                              "decoder.blocks")
    out = {"encoder_to_decoder.weight": other.pop("encoder_to_decoder.weight"),
           "mask_token": other.pop("mask_token")}
    for key in other:
        if key != "pos_embed":  # the decoder's fixed sinusoid table, when a version saved it
            raise CheckpointError(f"{where}: unexpected key '{key}'")
    dec_dim = int(out["mask_token"].shape[-1])
    for i, parts in blocks.items():
        out.update(_map_block(parts, f"decoder.decoder_layers.{i}.", f"{where}: decoder.blocks.{i}"))
    for name in ("norm.weight", "norm.bias", "head.weight", "head.bias"):
        if name not in rest:
            raise CheckpointError(f"{where}: decoder.{name} is missing")
        out[f"decoder.{name}"] = rest.pop(name)
    for key in rest:
        raise CheckpointError(f"{where}: unexpected key 'decoder.{key}'")
    expected_pred = config["num_channels"] * config["tubelet_size"] * config["patch_size"] ** 2
    if out["decoder.head.weight"].shape[0] != expected_pred:
        raise CheckpointError(f"{where}: decoder.head predicts {out['decoder.head.weight'].shape[0]} values per "
                              f"patch, HF VideoMAE expects {expected_pred}")
    config.update({
        "decoder_hidden_size": dec_dim,
        "decoder_num_hidden_layers": len(blocks),
        "decoder_num_attention_heads": _heads(dec_dim, head_dim, decoder_num_heads, "decoder"),
        "decoder_intermediate_size": int(blocks[0]["mlp.fc1.weight"].shape[0]),
    })
    return out
