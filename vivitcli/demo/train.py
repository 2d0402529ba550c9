"""Train the bundled demo model on synthetic clips: `python -m vivitcli.demo.train [--out DIR]`.

Reproducible: every training clip k is `synthetic.sample_spec((TRAIN_SEED_TAG, k))` and every random
choice of the training loop comes from SEED, so the same machine and library versions give the same
weights. Integer seeds (what tests and `vivit sample-clip` use) never reach the generator with the
same seed material as a training clip.

Training inputs go through the shipped preprocessor (vivitcli.preprocess.Preprocessor built from
PREPROCESSOR_CONFIG): frames are rendered at the clip's own size, resized with PIL as the CLI does, and a
share of the clips make a round trip through their codec (and, for half of those, PyAV's own scaler, as
a fast decode path may use) so that compression artefacts are seen in training.

The model is transformers' VivitForVideoClassification (a dev/test dependency) saved with
save_pretrained, which writes the Hugging Face layout vivitcli loads: config.json (id2label with the six
class names), model.safetensors; this script adds preprocessor_config.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from vivitcli import synthetic
from vivitcli.demo import training

SEED = 20261121
TRAIN_SEED_TAG = 7_000_001  # training clip k: sample_spec((TRAIN_SEED_TAG, k))
NUM_FRAMES = 8
IMAGE_SIZE = 64
CODEC_ROUND_TRIP = 0.35  # share of training clips encoded and decoded with their own codec

DEFAULT_OUT = Path(__file__).resolve().parent / "model"

PREPROCESSOR_CONFIG = training.squash_preprocessor_config(
    "VivitImageProcessor", IMAGE_SIZE, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], offset=False)

MODEL_CONFIG = dict(
    image_size=IMAGE_SIZE, num_frames=NUM_FRAMES, tubelet_size=[4, 16, 16], num_channels=3,
    hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
    hidden_act="gelu_fast", layer_norm_eps=1e-6, qkv_bias=True,
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)

# Label permutations under symmetries of a clip (index i -> new label of a clip labelled i).
_HFLIP = (1, 0, 2, 3, 4, 5)
_VFLIP = (0, 1, 3, 2, 4, 5)
_TRANSPOSE = (2, 3, 0, 1, 4, 5)
_REVERSE = (1, 0, 3, 2, 5, 4)


def sample_positions(num_video_frames: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Roughly uniform frame indices with the jitter that different uniform samplers show."""
    last = num_video_frames - 1
    if rng.random() < 0.5:  # segment centres, as vivitcli's "uniform" sampling picks them
        return np.floor((np.arange(num_frames) + 0.5) * num_video_frames / num_frames).astype(np.int64)
    a = rng.uniform(0.0, 0.08) * last
    b = last - rng.uniform(0.0, 0.08) * last
    return np.clip(np.rint(np.linspace(a, b, num_frames)), 0, last).astype(np.int64)


def _codec_round_trip(frames: np.ndarray, spec: synthetic.ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """Encode frames with the spec's codec/quality, decode them back; maybe scale with PyAV to the model size."""
    import io

    import av

    options, bit_rate = synthetic._encoder_options(spec)
    fmt = "webm" if spec.codec == "vp9" else "mp4"
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as container:
        stream = container.add_stream(synthetic.CODECS[spec.codec][0], rate=spec.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.codec_context.thread_count = 1  # threaded x264 made the training set differ between runs
        if bit_rate:
            stream.bit_rate = bit_rate
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buf.seek(0)
    pyav_scale = rng.random() < 0.5
    out = []
    with av.open(buf, mode="r", format=fmt) as container:
        container.streams.video[0].codec_context.thread_count = 1
        for frame in container.decode(video=0):
            if pyav_scale:
                out.append(frame.reformat(IMAGE_SIZE, IMAGE_SIZE, "rgb24", interpolation="BILINEAR").to_ndarray())
            else:
                out.append(frame.to_ndarray(format="rgb24"))
    if len(out) != len(frames):  # keep the clean frames rather than a short decode
        return frames
    return np.stack(out)


def make_example(k: int) -> tuple[np.ndarray, int]:
    """Training clip k → (uint8 (T, S, S, 3) resized frames, class index)."""
    from vivitcli.preprocess import Preprocessor

    rng = np.random.default_rng((TRAIN_SEED_TAG, k, 1))
    spec = synthetic.sample_spec((TRAIN_SEED_TAG, k))
    frames = synthetic.render_frames(spec, sample_positions(spec.num_frames, NUM_FRAMES, rng))
    if rng.random() < CODEC_ROUND_TRIP:
        frames = _codec_round_trip(frames, spec, rng)
    pre = Preprocessor.from_config(PREPROCESSOR_CONFIG, "vivit")
    resized = np.stack([pre.resize_frame(f) for f in frames])
    return resized, synthetic.CLASSES.index(spec.label)


def build_dataset(n: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """n training clips, made in a process pool (each clip depends only on its index)."""
    items = training.pool_map(make_example, range(n), workers)
    x = np.stack([it[0] for it in items])
    y = np.asarray([it[1] for it in items], dtype=np.int64)
    return x, y


def augment(x, y, gen):
    """Label-aware symmetries and colour changes on uint8 (B, T, S, S, 3) → new (x, y)."""
    import torch

    x, y = x.clone(), y.clone()
    r = torch.rand(x.shape[0], 6, generator=gen)
    for column, (dims, perm) in enumerate((((3,), _HFLIP), ((2,), _VFLIP), (None, _TRANSPOSE), ((1,), _REVERSE))):
        m = r[:, column] < 0.5
        x[m] = x[m].transpose(2, 3) if dims is None else x[m].flip(dims)
        y[m] = torch.tensor(perm)[y[m]]
    m = r[:, 4] < 0.5
    x[m] = x[m][..., torch.randperm(3, generator=gen)]
    m = r[:, 5] < 0.3
    x[m] = 255 - x[m]
    return x, y


def to_pixels(x, preprocessor):
    """uint8 (B, T, S, S, 3) → float (B, T, 3, S, S) through the shipped normalization."""
    b, t = x.shape[:2]
    flat = preprocessor.normalize(x.reshape(b * t, *x.shape[2:]).numpy())
    return flat.reshape(b, t, *flat.shape[1:])


def build_model():
    from transformers import VivitConfig, VivitForVideoClassification

    config = VivitConfig(
        **MODEL_CONFIG,
        num_labels=len(synthetic.CLASSES),
        id2label=dict(enumerate(synthetic.CLASSES)),
        label2id={c: i for i, c in enumerate(synthetic.CLASSES)},
    )
    return VivitForVideoClassification(config)


def train(out: Path, clips: int, steps: int, batch_size: int, lr: float, workers: int, threads: int = 1,
          log=print) -> dict:
    import torch

    from vivitcli.preprocess import Preprocessor

    gen = training.seed_torch(SEED, threads)
    t0 = time.time()
    x_np, y_np = build_dataset(clips, workers)
    log(f"dataset: {clips} clips {x_np.shape[1:]} in {time.time() - t0:.0f} s; "
        f"class counts {np.bincount(y_np, minlength=6).tolist()}")
    x_all, y_all = torch.from_numpy(x_np), torch.from_numpy(y_np)
    pre = Preprocessor.from_config(PREPROCESSOR_CONFIG, "vivit")

    model = build_model()
    model.train()
    opt, sched = training.adamw_cosine(model, lr, (0.9, 0.98), steps, no_decay_name="position")
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)

    t1 = time.time()
    running, correct, seen = 0.0, 0, 0
    for step, idx in training.batch_indices(clips, batch_size, steps, gen):
        xb, yb = augment(x_all[idx], y_all[idx], gen)
        pixels = to_pixels(xb, pre)
        logits = model(pixel_values=pixels).logits
        loss = loss_fn(logits, yb)
        training.optimizer_step(model, opt, sched, loss)
        running += loss.item()
        correct += int((logits.argmax(1) == yb).sum())
        seen += len(yb)
        if (step + 1) % 100 == 0 or step + 1 == steps:
            log(f"step {step + 1}/{steps}  loss {running / 100:.3f}  train acc {correct / seen:.3f}  "
                f"lr {sched.get_last_lr()[0]:.2e}  {time.time() - t1:.0f} s")
            running, correct, seen = 0.0, 0, 0

    training.save_checkpoint(model, out, PREPROCESSOR_CONFIG)
    stats = {"clips": clips, "steps": steps, "batch_size": batch_size, "seed": SEED,
             "data_seconds": round(t1 - t0, 1), "train_seconds": round(time.time() - t1, 1)}
    return stats


def main(argv=None) -> int:
    return training.main(argv, prog="python -m vivitcli.demo.train", doc=__doc__, train=train,
                         default_out=DEFAULT_OUT, clips=6000, steps=3500, lr=2e-3)


if __name__ == "__main__":
    sys.exit(main())
