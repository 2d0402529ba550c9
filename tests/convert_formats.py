"""Original-release checkpoints built from tiny Hugging Face models, for the convert tests.

The inverse mappings here are written from the original code's parameter names (MCG-NJU VideoMAE
modeling_finetune.py / modeling_pretrain.py, Scenic's ViViT and flax.serialization), independently of
vivitcli.convert: a test that converts these files back and matches transformers' logits checks both.
"""

from __future__ import annotations

import numpy as np
import torch

VIDEOMAE_LAYER_TO_ORIGINAL = {
    "layernorm_before": "norm1", "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
}


def _videomae_blocks(hf: dict, hf_prefix: str, out_prefix: str) -> dict:
    out = {}
    i = 0
    while f"{hf_prefix}{i}.attention.attention.query.weight" in hf:
        src = f"{hf_prefix}{i}."
        dst = f"{out_prefix}blocks.{i}."
        att = src + "attention.attention."
        out[dst + "attn.qkv.weight"] = torch.cat(
            [hf[att + "query.weight"], hf[att + "key.weight"], hf[att + "value.weight"]], dim=0)
        if att + "q_bias" in hf:
            out[dst + "attn.q_bias"] = hf[att + "q_bias"]
            out[dst + "attn.v_bias"] = hf[att + "v_bias"]
        for hf_name, orig in VIDEOMAE_LAYER_TO_ORIGINAL.items():
            for part in ("weight", "bias"):
                out[f"{dst}{orig}.{part}"] = hf[f"{src}{hf_name}.{part}"]
        i += 1
    return out


def videomae_to_original(hf: dict) -> dict:
    """A transformers VideoMAE state dict (classification or pre-training) → the release's key layout."""
    pretraining = "encoder_to_decoder.weight" in hf
    enc = "encoder." if pretraining else ""
    out = {
        f"{enc}patch_embed.proj.weight": hf["videomae.embeddings.patch_embeddings.projection.weight"],
        f"{enc}patch_embed.proj.bias": hf["videomae.embeddings.patch_embeddings.projection.bias"],
    }
    out.update(_videomae_blocks(hf, "videomae.encoder.layer.", enc))
    for hf_name, orig in (("videomae.layernorm", f"{enc}norm"), ("fc_norm", "fc_norm"), ("classifier", "head")):
        if f"{hf_name}.weight" in hf:
            out[f"{orig}.weight"] = hf[f"{hf_name}.weight"]
            out[f"{orig}.bias"] = hf[f"{hf_name}.bias"]
    if pretraining:
        out["encoder_to_decoder.weight"] = hf["encoder_to_decoder.weight"]
        out["mask_token"] = hf["mask_token"]
        out.update(_videomae_blocks(hf, "decoder.decoder_layers.", "decoder."))
        for part in ("norm.weight", "norm.bias", "head.weight", "head.bias"):
            out[f"decoder.{part}"] = hf[f"decoder.{part}"]
    return {k: v.clone() for k, v in out.items()}


def vivit_to_scenic(hf: dict, num_heads: int) -> dict:
    """A transformers ViViT classification state dict → Scenic's Flax parameter tree (numpy leaves)."""
    def a(t):
        return t.detach().float().numpy().copy()

    dim = hf["vivit.embeddings.cls_token"].shape[-1]
    head_dim = dim // num_heads
    enc = {
        "posembed_input": {"pos_embedding": a(hf["vivit.embeddings.position_embeddings"])},
        "encoder_norm": {"scale": a(hf["vivit.layernorm.weight"]), "bias": a(hf["vivit.layernorm.bias"])},
    }
    i = 0
    while f"vivit.encoder.layer.{i}.attention.attention.query.weight" in hf:
        p = f"vivit.encoder.layer.{i}."
        attn = {}
        for name in ("query", "key", "value"):
            w = hf[p + f"attention.attention.{name}.weight"]  # (H·Dh, D), torch Linear
            attn[name] = {"kernel": a(w.T).reshape(dim, num_heads, head_dim),
                          "bias": a(hf[p + f"attention.attention.{name}.bias"]).reshape(num_heads, head_dim)}
        attn["out"] = {"kernel": a(hf[p + "attention.output.dense.weight"].T).reshape(num_heads, head_dim, dim),
                       "bias": a(hf[p + "attention.output.dense.bias"])}
        enc[f"encoderblock_{i}"] = {
            "LayerNorm_0": {"scale": a(hf[p + "layernorm_before.weight"]), "bias": a(hf[p + "layernorm_before.bias"])},
            "MultiHeadDotProductAttention_0": attn,
            "LayerNorm_1": {"scale": a(hf[p + "layernorm_after.weight"]), "bias": a(hf[p + "layernorm_after.bias"])},
            "MlpBlock_0": {
                "Dense_0": {"kernel": a(hf[p + "intermediate.dense.weight"].T), "bias": a(hf[p + "intermediate.dense.bias"])},
                "Dense_1": {"kernel": a(hf[p + "output.dense.weight"].T), "bias": a(hf[p + "output.dense.bias"])},
            },
        }
        i += 1
    # torch Conv3d weight (out, in, t, h, w) → flax Conv kernel (t, h, w, in, out).
    conv = hf["vivit.embeddings.patch_embeddings.projection.weight"].permute(2, 3, 4, 1, 0)
    params = {
        "embedding": {"kernel": a(conv), "bias": a(hf["vivit.embeddings.patch_embeddings.projection.bias"])},
        "cls": a(hf["vivit.embeddings.cls_token"]),
        "Transformer": enc,
        "pre_logits": {},
    }
    if "classifier.weight" in hf:
        params["output_projection"] = {"kernel": a(hf["classifier.weight"].T), "bias": a(hf["classifier.bias"])}
    return params


def flax_msgpack_bytes(tree, *, chunk: tuple[str, ...] | None = None) -> bytes:
    """Serialize like flax.serialization.msgpack_serialize (ext 1: ndarray, ext 3: numpy scalar).

    chunk: a path of keys whose array is written in flax's chunked-array form (normally only used above
    2**30 bytes), so the reader's reassembly is exercised at test size.
    """
    import msgpack

    def ndarray_bytes(arr: np.ndarray) -> bytes:
        return msgpack.packb((arr.shape, arr.dtype.name, arr.tobytes("C")), use_bin_type=True)

    def ext_pack(x):
        if isinstance(x, np.ndarray):
            return msgpack.ExtType(1, ndarray_bytes(x))
        if isinstance(x, np.generic):
            return msgpack.ExtType(3, ndarray_bytes(np.asarray(x)))
        if isinstance(x, complex):
            return msgpack.ExtType(2, msgpack.packb((x.real, x.imag)))
        return x

    if chunk:
        node = tree
        for key in chunk[:-1]:
            node = node[key]
        arr = node[chunk[-1]]
        flat = arr.reshape(-1)
        pieces = [flat[i:i + 7] for i in range(0, flat.size, 7)]
        node[chunk[-1]] = {"__msgpack_chunked_array__": True,
                           "shape": {str(i): d for i, d in enumerate(arr.shape)},
                           "chunks": {str(i): c for i, c in enumerate(pieces)}}
    return msgpack.packb(tree, default=ext_pack, strict_types=True)


def scenic_train_state(params: dict) -> dict:
    """What flax.training.checkpoints wrote for Scenic's (flax.optim) train state."""
    return {
        "global_step": np.int64(30000),
        "optimizer": {"target": params, "state": {"step": np.int64(30000), "param_states": {}}},
        "model_state": {},
        "rng": np.array([0, 42], dtype=np.uint32),
        "accum_train_time": 12.5,
    }


def scenic_params_state(params: dict) -> dict:
    """What Scenic's current train state (train_utils.TrainState: params, opt_state, ...) serialises to."""
    return {
        "global_step": np.int64(1000),
        "opt_state": {"0": {"count": np.int32(1000)}, "1": {}},
        "params": params,
        "model_state": {},
        "rng": np.array([0, 7], dtype=np.uint32),
        "metadata": {"chrono": {"accum_train_time": 3.5}},
    }


# ---- Scenic factorised encoder (model 2): a random tree and a numpy forward written from Scenic's model.py ----

def _rand(rng, *shape, scale=0.2):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _scenic_encoder(rng, dim, heads, mlp, layers, tokens, scale=0.2) -> dict:
    hd = dim // heads
    enc = {"posembed_input": {"pos_embedding": _rand(rng, 1, tokens, dim)},
           "encoder_norm": {"scale": 1 + _rand(rng, dim), "bias": _rand(rng, dim)}}
    for i in range(layers):
        attn = {n: {"kernel": _rand(rng, dim, heads, hd, scale=scale), "bias": _rand(rng, heads, hd)}
                for n in ("query", "key", "value")}
        attn["out"] = {"kernel": _rand(rng, heads, hd, dim, scale=scale), "bias": _rand(rng, dim)}
        enc[f"encoderblock_{i}"] = {
            "LayerNorm_0": {"scale": 1 + _rand(rng, dim), "bias": _rand(rng, dim)},
            "MultiHeadDotProductAttention_0": attn,
            "LayerNorm_1": {"scale": 1 + _rand(rng, dim), "bias": _rand(rng, dim)},
            "MlpBlock_0": {"Dense_0": {"kernel": _rand(rng, dim, mlp, scale=scale), "bias": _rand(rng, mlp)},
                           "Dense_1": {"kernel": _rand(rng, mlp, dim, scale=scale), "bias": _rand(rng, dim)}},
        }
    return enc


def scenic_fe_params(*, seed=0, dim=32, frames=4, image=32, tubelet=(2, 8, 8), channels=3, spatial=(2, 4, 64),
                     temporal=(3, 2, 48), classes=5, classifier="token", scale=0.2) -> dict:
    """A random SpaceTimeViViT parameter tree. spatial / temporal: (layers, heads, mlp) — they differ on purpose.
    scale: std of the block kernels (0.2 exercises tiny models; ~0.02 keeps full-size ones in a trained range)."""
    rng = np.random.default_rng(seed)
    ft, fh, fw = tubelet
    token = int(classifier == "token")
    params = {
        "embedding": {"kernel": _rand(rng, ft, fh, fw, channels, dim, scale=0.05), "bias": _rand(rng, dim)},
        "SpatialTransformer": _scenic_encoder(rng, dim, spatial[1], spatial[2], spatial[0],
                                              token + (image // fh) * (image // fw), scale),
        "TemporalTransformer": _scenic_encoder(rng, dim, temporal[1], temporal[2], temporal[0], token + frames // ft,
                                               scale),
        "pre_logits": {},
    }
    if token:
        params["cls_SpatialTransformer"] = _rand(rng, 1, 1, dim)
        params["cls_TemporalTransformer"] = _rand(rng, 1, 1, dim)
    if classes:
        params["output_projection"] = {"kernel": _rand(rng, dim, classes), "bias": _rand(rng, classes)}
    return params


def _np_layer_norm(x, node, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * node["scale"] + node["bias"]


def _np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _np_encoder(x, enc):
    x = x + enc["posembed_input"]["pos_embedding"]
    i = 0
    while f"encoderblock_{i}" in enc:
        blk = enc[f"encoderblock_{i}"]
        att = blk["MultiHeadDotProductAttention_0"]
        y = _np_layer_norm(x, blk["LayerNorm_0"])
        q, k, v = (np.einsum("...nd,dhk->...hnk", y, att[n]["kernel"]) + att[n]["bias"][:, None, :]
                   for n in ("query", "key", "value"))
        s = np.einsum("...hqk,...hnk->...hqn", q, k) / np.sqrt(q.shape[-1])
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        o = np.einsum("...hqn,...hnk->...qhk", p, v)
        x = x + np.einsum("...qhk,hkd->...qd", o, att["out"]["kernel"]) + att["out"]["bias"]
        y = _np_layer_norm(x, blk["LayerNorm_1"])
        d0, d1 = blk["MlpBlock_0"]["Dense_0"], blk["MlpBlock_0"]["Dense_1"]
        x = x + _np_gelu_tanh(y @ d0["kernel"] + d0["bias"]) @ d1["kernel"] + d1["bias"]
        i += 1
    return _np_layer_norm(x, enc["encoder_norm"])


def scenic_fe_forward(params: dict, pixels: np.ndarray) -> dict:
    """Scenic's SpaceTimeViViT in float64 numpy on pixels (B, T, C, H, W): {'pooled', 'logits'?}.

    Written from model.py without looking at vivitcli: Conv3d 'VALID' with stride = kernel as a sum over the
    tubelet offsets, then vit_body per time slot (cls, Encoder, token 0 or mean), then over time.
    """
    def f64(node):
        return {k: f64(v) for k, v in node.items()} if isinstance(node, dict) else np.asarray(node, np.float64)

    p = f64(params)
    x = np.asarray(pixels, np.float64).transpose(0, 1, 3, 4, 2)   # NTHWC
    kernel = p["embedding"]["kernel"]
    ft, fh, fw, _, d = kernel.shape
    b, t, h, w, _ = x.shape
    gt, gh, gw = t // ft, h // fh, w // fw
    tokens = np.zeros((b, gt, gh, gw, d))
    for a in range(ft):
        for i in range(fh):
            for j in range(fw):
                tokens += np.einsum("nthwc,cd->nthwd", x[:, a::ft, i::fh, j::fw][:, :gt, :gh, :gw], kernel[a, i, j])
    tokens += p["embedding"]["bias"]

    def body(seq, name):
        if f"cls_{name}" in p:
            cls = np.broadcast_to(p[f"cls_{name}"], (seq.shape[0], 1, d))
            out = _np_encoder(np.concatenate([cls, seq], axis=1), p[name])
            return out[:, 0]
        return _np_encoder(seq, p[name]).mean(axis=1)

    slots = np.stack([body(tokens[:, s].reshape(b, gh * gw, d), "SpatialTransformer") for s in range(gt)], axis=1)
    pooled = body(slots, "TemporalTransformer")
    out = {"pooled": pooled}
    if "output_projection" in p:
        out["logits"] = pooled @ p["output_projection"]["kernel"] + p["output_projection"]["bias"]
    return out


def swap_query_key(monkeypatch, module, query_weight: str) -> None:
    """Patches module.convert so the state it returns has `query_weight` and the matching key kernel exchanged:
    the classic mapping bug that --verify must catch."""
    real = module.convert

    def swapped(*args, **kwargs):
        config, state = real(*args, **kwargs)
        key_weight = query_weight.replace("query", "key")
        state[query_weight], state[key_weight] = state[key_weight], state[query_weight]
        return config, state

    monkeypatch.setattr(module, "convert", swapped)
