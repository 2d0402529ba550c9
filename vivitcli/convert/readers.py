"""One reader per source format (sources.detect names it): the source's files → a Loaded (options.py).

    hf-pickle / hf-safetensors   read_hf           a Hugging Face (or vivit_fe) directory
    videomae-pth                 read_videomae     an original VideoMAE release .pth
    scenic-flax                  read_scenic       a Scenic ViViT msgpack checkpoint: model 1 or the factorised
                                                   encoder (model 2), legacy optimizer.target or params train state
Each reader also returns the reference forward that --verify compares the written checkpoint against.
"""

from __future__ import annotations

from vivitcli.convert.options import ConvertOptions, Loaded
from vivitcli.preprocess import default_config
from vivitcli.errors import CheckpointError, ConvertError, UsageError

HF_MODEL_TYPES = ("vivit", "videomae", "vivit_fe")


def read(source, opts: ConvertOptions) -> Loaded:
    readers = {"hf-pickle": read_hf, "hf-safetensors": read_hf, "videomae-pth": read_videomae,
               "scenic-flax": read_scenic}
    if source.format not in readers:
        raise ConvertError(f"{source.path}: unsupported format {source.format}")
    return readers[source.format](source, opts)


def _where(source) -> str:
    return str(source.files[0] if source.files else source.path)


def _square(size) -> int:
    return int(size[0]) if isinstance(size, (list, tuple)) else int(size)


def _placeholder_labels(config: dict) -> None:
    n = config.pop("num_labels", 0)
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(n)}
    config["label2id"] = {f"LABEL_{i}": i for i in range(n)}


# ------------------------------------------------------------------------------------------------ HF layout

def read_hf(source, opts: ConvertOptions) -> Loaded:
    from vivitcli.convert import sources

    if any(v is not None for v in (opts.num_frames, opts.num_heads, opts.decoder_num_heads)):
        raise UsageError("--num-frames / --num-heads / --decoder-num-heads apply to original releases; "
                         f"{source.path} is a Hugging Face checkpoint with its own config.json")
    config, state, preprocessor = sources.read_hf(source)
    model_type = config.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise CheckpointError(f"{source.path / 'config.json'}: model_type {model_type!r} is not ViViT or VideoMAE")
    if not config.get("architectures"):
        config["architectures"] = [_infer_architecture(model_type, state)]
    if preprocessor is None:
        preprocessor = default_config(model_type, _square(config.get("image_size", 224)),
                                            opts.preprocess or "hf")
    return Loaded(config, state, preprocessor, _load_model_reference(source.path))


def _infer_architecture(model_type: str, state: dict) -> str:
    prefix = "Vivit" if model_type == "vivit" else "VideoMAE"
    if any(k.startswith("classifier.") for k in state):
        return prefix + "ForVideoClassification"
    if any(k.startswith("decoder.") for k in state):
        return "VideoMAEForPreTraining"
    return prefix + "Model"


def _load_model_reference(path):
    """An HF source is its own reference: vivitcli runs it as loaded (a re-cast or relabelled copy must agree)."""
    def ref(pv):
        from vivitcli import load_model
        from vivitcli.convert.verify import run_model

        model = load_model(str(path), device=str(pv.device), dtype="float32", attn="eager")
        return run_model(model, pv)

    return ref


# ------------------------------------------------------------------------------------- VideoMAE release

def read_videomae(source, opts: ConvertOptions) -> Loaded:
    from vivitcli.convert import reference, sources, videomae_original

    where = _where(source)
    raw = videomae_original.unwrap(sources.safe_torch_load(source.files[0]), source.files[0])
    if not videomae_original.is_videomae_original(raw):
        hint = ("it looks like a Hugging Face state dict: convert its directory (with config.json) instead"
                if any(k.startswith(("vivit.", "videomae.")) for k in raw) else None)
        raise CheckpointError(f"{where}: not an original VideoMAE checkpoint (no patch_embed.proj / "
                              "blocks.*.attn.qkv keys)", hint=hint)
    config, state = videomae_original.convert(
        raw, num_frames=opts.num_frames or 16, image_size=opts.image_size, head_dim=opts.head_dim,
        num_heads=opts.num_heads, decoder_num_heads=opts.decoder_num_heads, where=where)
    _placeholder_labels(config)
    heads = config["num_attention_heads"]

    def ref(pv):
        return reference.videomae_original(raw, pv, num_heads=heads, eps=1e-6)

    pre = default_config("videomae", opts.image_size, opts.preprocess or "hf")
    return Loaded(config, state, pre, ref)


# ---------------------------------------------------------------------------------------- Scenic ViViT

def read_scenic(source, opts: ConvertOptions) -> Loaded:
    import numpy as np
    import torch

    from vivitcli.convert import flax_msgpack, reference, scenic_fe, scenic_vivit

    where = _where(source)
    tree = flax_msgpack.load(source.files[0])
    params = scenic_vivit.find_params(tree, where)
    factorised = scenic_fe.is_factorised_encoder(params)
    module = scenic_fe if factorised else scenic_vivit
    config, arrays = module.convert(tree, image_size=opts.image_size, num_frames=opts.num_frames, where=where)
    notes = list(config.pop("_notes", []))
    if opts.num_heads is not None and opts.num_heads != config["num_attention_heads"]:
        raise UsageError(f"{where}: the kernels hold {config['num_attention_heads']} heads, not {opts.num_heads}")
    state = {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}
    _placeholder_labels(config)
    forward = reference.scenic_vivit_fe if factorised else reference.scenic_vivit

    def ref(pv):
        return forward(params, pv)

    # A factorised encoder has no hub port to agree with: it gets Scenic's own pipeline unless told otherwise.
    style = opts.preprocess or ("original" if factorised else "hf")
    pre = default_config(config["model_type"], opts.image_size, style)
    if style == "hf":
        notes.append("preprocessor: the hub checkpoint's settings (shortest edge = crop, 1/127.5 with offset, then "
                     "mean/std 0.5); --preprocess original writes the Scenic pipeline's [-1, 1] after resizing "
                     "to 256/224·size")
    else:
        notes.append("preprocessor: Scenic's own pipeline (shortest edge 256/224·size, centre crop, pixels in "
                     "[-1, 1]); --preprocess hf writes the hub ViViT port's settings instead")
    return Loaded(config, state, pre, ref, notes)
