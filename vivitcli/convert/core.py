"""`vivit convert`: any supported checkpoint in, a Hugging Face-style layout (config.json,
preprocessor_config.json, model.safetensors) out, checked by running source and result on the same synthetic clip.

The pipeline only: options.py (what is asked), sources.py (what SRC is), readers.py (one reader per format),
classes.py (head, labels, splits), output.py (atomic writing), verify.py (the comparison).
convert_checkpoint() is the library entry; the CLI command only parses options and prints its report.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vivitcli.convert.options import ConvertOptions, ConvertResult, check_options


def convert_checkpoint(src, dst, options: ConvertOptions | None = None, **kwargs) -> ConvertResult:
    """Convert SRC into a checkpoint directory at DST (see module doc). Raises VivitError types."""
    from vivitcli.convert import classes, output, readers, sources, verify

    opts = dataclasses.replace(options or ConvertOptions(), **kwargs)
    check_options(opts)
    if opts.verify:
        verify.check_device(opts.device)
    src, dst = Path(src), Path(dst)
    source = sources.detect(src)
    output.check_destination(dst, src, opts.force)

    loaded = readers.read(source, opts)
    config, state, notes = loaded.config, loaded.state, list(loaded.notes)
    notes += config.pop("_notes", [])
    if opts.strip_head:
        config, state = classes.strip_head(config, state, notes)
    label_source, splits = classes.apply_labels(config, state, opts, notes)
    out_dtype = opts.dtype or _dominant_dtype(state)
    state = _cast(state, out_dtype)
    config["torch_dtype"] = out_dtype
    config["dtype"] = out_dtype

    result = ConvertResult(src=src, dst=dst, format=source.format, architecture=config["architectures"][0],
                           dtype=out_dtype, num_params=sum(int(t.numel()) for t in state.values()),
                           num_labels=classes.num_labels(state), label_source=label_source,
                           class_splits=splits, notes=notes)
    with output.staging(dst) as (tmp, box):
        output.write_json(tmp / "config.json", config)
        output.write_json(tmp / "preprocessor_config.json", loaded.preprocessor)
        output.write_safetensors(tmp / "model.safetensors", state)
        del state
        if opts.verify:
            verify.verify(tmp, config, loaded.reference, opts, out_dtype, result)
        output.commit(tmp, dst, box)
    return result


def _dominant_dtype(state: dict) -> str:
    import torch

    counts: dict = {}
    for t in state.values():
        if t.is_floating_point():
            counts[t.dtype] = counts.get(t.dtype, 0) + t.numel()
    dtype = max(counts, key=counts.get) if counts else torch.float32
    return {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype, "float32")


def _cast(state: dict, dtype: str) -> dict:
    import torch

    target = getattr(torch, dtype)
    return {k: (v.to(target) if v.is_floating_point() else v) for k, v in state.items()}
