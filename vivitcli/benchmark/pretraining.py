"""`vivit benchmark --mode pretraining`: VideoMAE pre-training steps (owner of this file: the mae helper).

pretraining           the masked forward and its loss (90% tube masking: the encoder sees a tenth of the
                      tokens, the decoder all of them), under inference_mode
pretraining-training  the same, then backward and an AdamW step

Presets and config dicts build the pre-training model with seeded random weights (decoder included);
other names load with load_model(..., task="pretraining"). The step returns the decoder's logits, so the
eager/sdpa output difference covers the pre-training path too.
"""

from __future__ import annotations

MODES = ("pretraining", "pretraining-training")
MASK_RATIO = 0.9


def build(config):
    from vivitcli.benchmark.source import resolve
    from vivitcli.models.videomae_pretraining import build_pretraining, load_pretraining

    model_config = config.model_config if config.model_config is not None else resolve(config.model)
    kwargs = dict(device=config.device, dtype=config.dtype, attn=config.attn)
    if model_config is not None:
        return build_pretraining(model_config, name=config.model, seed=config.seed, **kwargs)
    return load_pretraining(config.model, **kwargs)


def make_step(model, pixels, mode: str, seed: int):
    """A no-argument step returning the logits (B, masked tokens, patch values)."""
    import torch

    from vivitcli.masking import make_mask

    mask = make_mask(model.cfg.grid, MASK_RATIO, batch=pixels.shape[0], seed=seed).to(pixels.device)
    if mode == "pretraining":
        model.eval()

        def infer():
            with torch.inference_mode():
                return model(pixels, mask)[0]

        return infer

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def train():
        optimizer.zero_grad(set_to_none=True)
        logits, loss = model(pixels, mask)
        loss.backward()
        optimizer.step()
        return logits.detach()

    return train
