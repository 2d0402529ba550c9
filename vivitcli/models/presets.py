"""Full-size config.json dicts (as the hub ships them) for building random-weight models: benchmarks, tests.

    from vivitcli.models import build_model
    from vivitcli.models.presets import preset
    model = build_model(preset("vivit"), dtype="bfloat16")      # ViViT-B/16x2, 32×224×224, random weights
"""

from __future__ import annotations

import copy

from vivitcli.labels import dataset_labels

VIVIT_B_16X2 = "google/vivit-b-16x2-kinetics400"
VIDEOMAE_B = "MCG-NJU/videomae-base-finetuned-kinetics"

PRESETS: dict[str, dict] = {
    # google/vivit-b-16x2-kinetics400/config.json: 400 placeholder labels (LABEL_i, Kinetics-400 order).
    VIVIT_B_16X2: {
        "architectures": ["VivitForVideoClassification"], "model_type": "vivit",
        "image_size": 224, "num_frames": 32, "tubelet_size": [2, 16, 16], "num_channels": 3,
        "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
        "hidden_act": "gelu_fast", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02, "layer_norm_eps": 1e-06, "qkv_bias": True,
        "id2label": {str(i): f"LABEL_{i}" for i in range(400)},
        "label2id": {f"LABEL_{i}": i for i in range(400)},
    },
    # MCG-NJU/videomae-base-finetuned-kinetics/config.json: mean pooling + fc_norm, Kinetics-400 names.
    VIDEOMAE_B: {
        "architectures": ["VideoMAEForVideoClassification"], "model_type": "videomae",
        "image_size": 224, "num_frames": 16, "patch_size": 16, "tubelet_size": 2, "num_channels": 3,
        "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "qv_bias": True, "use_mean_pooling": True,
        "norm_pix_loss": True, "decoder_hidden_size": 384, "decoder_num_hidden_layers": 4,
        "decoder_num_attention_heads": 6, "decoder_intermediate_size": 1536,
        "id2label": {str(i): name for i, name in enumerate(dataset_labels("kinetics400"))},
        "label2id": {name: i for i, name in enumerate(dataset_labels("kinetics400"))},
    },
}

# The random-weight entries of vivitcli.models.names point here by architecture.
ARCHITECTURES = {"vivit": VIVIT_B_16X2, "videomae": VIDEOMAE_B}


def preset(name: str) -> dict:
    """A deep copy of a full-size config: `name` is a hub id of PRESETS, an architecture (vivit, videomae),
    or a random-weight alias of vivitcli.models.names (random-vivit-b, random-videomae-b)."""
    from vivitcli.models.names import alias_names, lookup

    entry = lookup(name)
    key = ARCHITECTURES.get(entry.target if entry is not None and entry.kind == "random" else name, name)
    if key not in PRESETS:
        from vivitcli.errors import UsageError

        known = ", ".join([*alias_names("random"), *ARCHITECTURES, *PRESETS])
        raise UsageError(f"unknown preset {name!r} (known: {known})")
    return copy.deepcopy(PRESETS[key])
