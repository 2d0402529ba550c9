"""Train the bundled masked-autoencoder demo: `python -m vivitcli.demo.mae.train [--out DIR]`.

A small VideoMAE pre-training model (encoder + decoder) on the demo's synthetic clips (vivitcli.synthetic:
the six motion classes, labels unused), 8 frames of 64x64 px, patches 2x8x8 (4x8x8 = 256 tokens), tube
masking of 90% as the paper trains. Reproducible: training clip k is `synthetic.sample_spec((TRAIN_SEED_TAG,
k))`, every random choice of the loop (batches, flips, masks) comes from SEED, and torch runs one thread.

norm_pix_loss is off: the decoder then predicts pixels (in the loss's ImageNet-unnormalised space), so
`vivit reconstruct --model demo-mae` pictures need no statistics of the hidden patches and show what the
model actually predicts. (With it on, the hidden patches would be drawn with their true mean and std: on
these clips the normalised targets of flat and noise patches are unpredictable, a trial run's loss stayed at
0.57 — predicting zero — and its pictures would have shown the object only through those borrowed
statistics.) Batches alternate between 75% and 90% tube masking: the 75% batches show more of each object,
so the model learns to draw it.

Size and length were chosen on what the pictures show (tests/test_reconstruct.py measures it: the IoU of the
object drawn where it was hidden). A 64-wide 2-layer decoder trained for 1500 steps (the first demo-mae)
painted a brown blend of object and background colours everywhere an object might be: IoU 0.0. The same model
trained for 4000 steps, or with a 128-wide decoder for 2500 steps, draws the object (README picture 0.50 and
0.47 with the README's mask, lower with others); a 128-wide 3-layer decoder for 2500 steps, in about the
same time (20 minutes with one thread here), is best over four masks of that clip (0.51, 0.46, 0.28, 0.44)
and scores 0.27 on unseen clips.

The model is transformers' VideoMAEForPreTraining (a dev/test dependency) saved with save_pretrained: the
Hugging Face layout (config.json, model.safetensors with the decoder); this script adds
preprocessor_config.json (the whole frame squashed to 64x64, ImageNet mean/std, as the loss assumes).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from vivitcli import synthetic
from vivitcli.demo import training

SEED = 20261130
TRAIN_SEED_TAG = 7_000_015  # training clip k: sample_spec((TRAIN_SEED_TAG, k)); held-out clips use other tags
NUM_FRAMES = 8
IMAGE_SIZE = 64
MASK_RATIOS = (0.75, 0.9)  # alternating batches; `vivit reconstruct` shows 0.9

DEFAULT_OUT = Path(__file__).resolve().parent / "model"
# Weights are stored in float16 (1.8 MB instead of 3.6): the loaders compute in the dtype the user asks for, and
# rounding a float32 run's weights moved its unseen-clip loss by 1e-7.
STORAGE_DTYPE = "float16"

PREPROCESSOR_CONFIG = training.squash_preprocessor_config(
    "VideoMAEImageProcessor", IMAGE_SIZE, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])

MODEL_CONFIG = dict(
    image_size=IMAGE_SIZE, num_frames=NUM_FRAMES, patch_size=8, tubelet_size=2, num_channels=3,
    hidden_size=128, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
    hidden_act="gelu", layer_norm_eps=1e-12, qv_bias=True, use_mean_pooling=False,
    decoder_hidden_size=128, decoder_num_hidden_layers=3, decoder_num_attention_heads=4,
    decoder_intermediate_size=256, norm_pix_loss=False,
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)


def sample_positions(num_video_frames: int, num_frames: int = NUM_FRAMES) -> np.ndarray:
    """Segment centres, as vivitcli's "uniform" sampling (what `vivit reconstruct` reads) picks them."""
    return np.floor((np.arange(num_frames) + 0.5) * num_video_frames / num_frames).astype(np.int64)


def make_clip(seed) -> np.ndarray:
    """uint8 (T, S, S, 3): clip `seed` rendered at its own size at the sampled frames, resized as the CLI does."""
    from vivitcli.preprocess import Preprocessor

    spec = synthetic.sample_spec(seed)
    frames = synthetic.render_frames(spec, sample_positions(spec.num_frames))
    pre = Preprocessor.from_config(PREPROCESSOR_CONFIG, "videomae")
    return np.stack([pre.resize_frame(f) for f in frames])


def build_dataset(seeds, workers: int) -> np.ndarray:
    return np.stack(training.pool_map(make_clip, seeds, workers))


def to_pixels(x, preprocessor):
    """uint8 (B, T, S, S, 3) → float (B, T, 3, S, S) through the shipped normalization."""
    b, t = x.shape[:2]
    flat = preprocessor.normalize(np.ascontiguousarray(x.reshape(b * t, *x.shape[2:])))
    return flat.reshape(b, t, *flat.shape[1:])


def augment(x, gen):
    """Flips, transposes, time reversal and channel orders on uint8 (B, T, S, S, 3): more motions and colours."""
    import torch

    x = x.clone()
    r = torch.rand(x.shape[0], 5, generator=gen)
    for column, dims in enumerate(((3,), (2,), None, (1,))):
        m = r[:, column] < 0.5
        x[m] = x[m].transpose(2, 3) if dims is None else x[m].flip(dims)
    m = r[:, 4] < 0.5
    x[m] = x[m][..., torch.randperm(3, generator=gen)]
    return x


def build_model():
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    return VideoMAEForPreTraining(VideoMAEConfig(**MODEL_CONFIG))


def grid() -> tuple[int, int, int]:
    p = MODEL_CONFIG["patch_size"]
    return NUM_FRAMES // MODEL_CONFIG["tubelet_size"], IMAGE_SIZE // p, IMAGE_SIZE // p


def train(out: Path, clips: int, steps: int, batch_size: int, lr: float, workers: int, threads: int = 1,
          log=print) -> dict:
    import torch

    from vivitcli.masking import make_mask
    from vivitcli.preprocess import Preprocessor

    gen = training.seed_torch(SEED, threads)
    t0 = time.time()
    x_all = torch.from_numpy(build_dataset(((TRAIN_SEED_TAG, k) for k in range(clips)), workers))
    log(f"dataset: {clips} clips {tuple(x_all.shape[1:])} in {time.time() - t0:.0f} s")
    pre = Preprocessor.from_config(PREPROCESSOR_CONFIG, "videomae")

    model = build_model()
    model.train()
    opt, sched = training.adamw_cosine(model, lr, (0.9, 0.95), steps, no_decay_name="mask_token")

    t1 = time.time()
    running = 0.0
    for step, idx in training.batch_indices(clips, batch_size, steps, gen):
        pixels = to_pixels(augment(x_all[idx], gen).numpy(), pre)
        mask = make_mask(grid(), MASK_RATIOS[step % 2], batch=len(idx), generator=gen)
        loss = model(pixel_values=pixels, bool_masked_pos=mask).loss
        training.optimizer_step(model, opt, sched, loss)
        running += loss.item()
        if (step + 1) % 100 == 0 or step + 1 == steps:
            n = (step % 100) + 1
            log(f"step {step + 1}/{steps}  loss {running / n:.4f}  lr {sched.get_last_lr()[0]:.2e}  "
                f"{time.time() - t1:.0f} s")
            running = 0.0

    training.save_checkpoint(model, out, PREPROCESSOR_CONFIG, dtype=STORAGE_DTYPE)
    return {"clips": clips, "steps": steps, "batch_size": batch_size, "seed": SEED,
            "data_seconds": round(t1 - t0, 1), "train_seconds": round(time.time() - t1, 1)}


def main(argv=None) -> int:
    return training.main(argv, prog="python -m vivitcli.demo.mae.train", doc=__doc__, train=train,
                         default_out=DEFAULT_OUT, clips=3000, steps=2500, lr=1.5e-3)


if __name__ == "__main__":
    sys.exit(main())
