"""The bundled demo model end to end, the synthetic clip generator, and `vivit sample-clip`.

The accuracy test writes clips the model never saw (integer seeds; training uses tuple seeds, see
vivitcli/demo/train.py) across the whole clip range and runs `vivit classify --model demo` over them.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from vivitcli import synthetic
from vivitcli.cli import app

MODEL_DIR = Path(__file__).resolve().parents[1] / "vivitcli" / "demo" / "model"
TEST_SEED_START = 900_000
N_CLIPS = 36

runner = CliRunner()


def _invoke(args):
    return runner.invoke(app, [str(a) for a in args])


# --- the shipped checkpoint -------------------------------------------------------------------------


def test_demo_checkpoint_is_hf_layout_with_the_six_labels_and_small():
    config = json.loads((MODEL_DIR / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    assert labels == list(synthetic.CLASSES)
    assert config["model_type"] == "vivit"
    pre = json.loads((MODEL_DIR / "preprocessor_config.json").read_text())
    assert pre["size"] == {"height": config["image_size"], "width": config["image_size"]}
    assert (MODEL_DIR / "model.safetensors").is_file()
    total = sum(f.stat().st_size for f in MODEL_DIR.rglob("*") if f.is_file())
    assert total <= 5 * 1024 * 1024


# --- the generator ----------------------------------------------------------------------------------


def test_sampled_specs_stay_inside_the_documented_range():
    for seed in range(0, 4000, 7):
        _check_spec(synthetic.sample_spec(seed))
    for seed in range(50):  # pinned fields must not push the drawn ones out of range
        _check_spec(synthetic.sample_spec(seed, label=synthetic.CLASSES[seed % 6], aspect="9:16", long_side=96))


def _check_spec(s):
    long_side, short = max(s.width, s.height), min(s.width, s.height)
    assert 96 <= long_side <= 640 and s.width % 2 == 0 and s.height % 2 == 0
    ratios = {min(a, b) / max(a, b) for a, b in synthetic.ASPECTS.values()}
    assert any(abs(short - long_side * q) <= 2 for q in ratios)  # both sides rounded to even numbers
    assert 12 <= float(s.fps) <= 60
    assert 1.0 - 1 / float(s.fps) <= s.duration <= 6.0 + 1 / float(s.fps)
    assert s.codec in synthetic.CODECS and s.shape in synthetic.SHAPES
    lo = np.asarray(s.background_color) - s.noise_amplitude
    hi = np.asarray(s.background_color) + s.noise_amplitude
    fg = np.asarray(s.color)
    assert lo.min() >= 0 and hi.max() <= 255
    assert np.all((fg >= hi + 100) | (fg <= lo - 100))
    (x0, y0), (x1, y1) = s.start, s.end
    for x, y, r in (s.at(0), s.at(s.num_frames - 1)):
        assert r <= x <= s.width - r and r <= y <= s.height - r
    if s.label.startswith("moving"):
        assert s.radius_start == s.radius_end
        assert 0.05 * short - 1e-6 <= s.radius_start <= 0.125 * short + 1e-6
        dx, dy = x1 - x0, y1 - y0
        expected = {"moving left": (-1, 0), "moving right": (1, 0), "moving up": (0, -1), "moving down": (0, 1)}
        ex, ey = expected[s.label]
        travel = (dx / s.width) if ex else (dy / s.height)
        assert (dx == 0) == (ex == 0) and (dy == 0) == (ey == 0)
        assert 0.3 - 1e-9 <= abs(travel) <= 0.7 + 1e-9 and np.sign(travel) == (ex or ey)
    else:
        assert s.start == s.end
        assert abs(x0 - s.width / 2) <= 0.05 * s.width + 1e-6 and abs(y0 - s.height / 2) <= 0.05 * s.height + 1e-6
        factor = s.radius_end / s.radius_start
        if s.label == "shrinking":
            factor = 1 / factor
        assert 2 - 1e-9 <= factor <= 4 + 1e-9


def test_render_draws_the_object_in_its_colour_over_the_background():
    spec = synthetic.sample_spec(11, label="moving right", background="solid", shape="disc", width=200, height=100)
    first, last = synthetic.render_frames(spec, [0, spec.num_frames - 1])
    for frame, index in ((first, 0), (last, spec.num_frames - 1)):
        x, y, r = spec.at(index)
        assert tuple(frame[int(y), int(x)]) == spec.color
        assert tuple(frame[int(y), int(np.clip(x + 2 * r, 0, spec.width - 1))]) in (spec.background_color, spec.color)
    assert tuple(first[0, 0]) == spec.background_color or spec.start[0] < spec.radius_start + 1


# --- sample-clip ------------------------------------------------------------------------------------


def _object_centroids(path):
    """(x, y) of pixels far from the corner (background) colour, first and last decoded frame."""
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    out = []
    for f in (frames[0], frames[-1]):
        mask = np.abs(f - f[0, 0]).sum(-1) > 150
        ys, xs = np.nonzero(mask)
        out.append((xs.mean(), ys.mean(), mask.sum()))
    return out, len(frames)


@pytest.mark.parametrize("label, ext", [("moving up", ".mp4"), ("moving left", ".webm"), ("growing", ".mkv")])
def test_sample_clip_writes_a_decodable_clip_of_the_requested_class(tmp_path, label, ext):
    out = tmp_path / f"clip{ext}"
    result = _invoke(["sample-clip", out, "--class", label, "--seed", 3, "--size", "160x120", "--fps", 24,
                      "--duration", 1.5, "--background", "solid"])
    assert result.exit_code == 0, result.output
    assert label in result.output and str(out) in result.output
    (first, last), n = _object_centroids(out)
    assert n == 36
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (160, 120)
        assert stream.codec_context.name == ("vp9" if ext == ".webm" else "h264")
    if label == "moving up":
        assert last[1] < first[1] - 0.3 * 120 + 3 and abs(last[0] - first[0]) < 2
    elif label == "moving left":
        assert last[0] < first[0] - 0.3 * 160 + 3 and abs(last[1] - first[1]) < 2
    else:
        assert last[2] > 3.5 * first[2]  # area grows with the radius squared (factor >= 2)


def test_sample_clip_is_reproducible_and_names_bad_options(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    assert _invoke(["sample-clip", a, "--seed", 5, "--size", "96x96", "--duration", 1]).exit_code == 0
    assert _invoke(["sample-clip", b, "--seed", 5, "--size", "96x96", "--duration", 1]).exit_code == 0
    assert a.read_bytes() == b.read_bytes()

    bad = _invoke(["sample-clip", tmp_path / "x.mp4", "--class", "sideways"])
    assert bad.exit_code == 2 and "sideways" in bad.output and "moving left" in bad.output
    bad = _invoke(["sample-clip", tmp_path / "x.webm", "--codec", "h264"])
    assert bad.exit_code == 2 and "x.webm" in bad.output
    bad = _invoke(["sample-clip", tmp_path / "x.mp4", "--size", "100"])
    assert bad.exit_code == 2 and "WIDTHxHEIGHT" in bad.output
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x*"))


# --- accuracy on unseen clips through `vivit classify --model demo` ---------------------------------


def _unseen_specs():
    """N_CLIPS short clips spread over every axis of the range: each class × each codec twice, both
    ends of the size, fps and duration ranges, all four aspects, both shapes and backgrounds."""
    aspects = list(synthetic.ASPECTS)
    codecs = list(synthetic.CODECS)
    long_sides = (96, 640, 150, 250, 400)
    fps_values = (12, 60, Fraction(30000, 1001), 15, 25, 50, 24)
    durations = (1.0, 1.4, 6.0, 1.2, 2.0, 1.7)
    specs = []
    for i in range(N_CLIPS):
        fps = fps_values[i % 7]
        duration = durations[(i // 6 + i) % 6]
        if duration == 6.0 and fps > 30:
            duration = 3.0  # keep the test fast: 6 s clips only at low frame rates
        specs.append(synthetic.sample_spec(
            TEST_SEED_START + i, label=synthetic.CLASSES[i % 6], codec=codecs[(i // 6) % 3],
            aspect=aspects[(i // 2 + i // 12) % 4], long_side=long_sides[i % 5], fps=fps, duration=duration,
            shape=synthetic.SHAPES[(i // 3) % 2], background=synthetic.BACKGROUNDS[(i // 6 + i) % 2]))
    return specs


def test_unseen_clips_cover_the_whole_range():
    specs = _unseen_specs()
    assert {s.label for s in specs} == set(synthetic.CLASSES)
    assert {(s.label, s.codec) for s in specs} == {(c, k) for c in synthetic.CLASSES for k in synthetic.CODECS}
    ratios = {round(s.width / s.height, 1) for s in specs}
    assert ratios == {1.3, 1.8, 0.6, 1.0}
    assert min(max(s.width, s.height) for s in specs) == 96 and max(max(s.width, s.height) for s in specs) == 640
    assert min(float(s.fps) for s in specs) == 12 and max(float(s.fps) for s in specs) == 60
    assert min(s.duration for s in specs) <= 1.05 and max(s.duration for s in specs) >= 5.9
    assert {s.shape for s in specs} == set(synthetic.SHAPES)
    assert {s.background for s in specs} == set(synthetic.BACKGROUNDS)


def test_classify_demo_model_on_unseen_clips_is_at_least_95_percent(tmp_path):
    specs = _unseen_specs()
    truth = {}
    for i, spec in enumerate(specs):
        path = tmp_path / f"clip_{i:02d}{synthetic.CODECS[spec.codec][1]}"
        synthetic.write_clip(spec, path)
        truth[path.name] = spec.label
    result = _invoke(["classify", "--model", "demo", "--format", "jsonl", "--top-k", "1", "--quiet", tmp_path])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(records) == len(specs)
    predicted = {Path(r["path"]).name: r["labels"][0]["label"] for r in records}
    assert set(predicted) == set(truth)
    wrong = {name: (truth[name], predicted[name]) for name in truth if predicted[name] != truth[name]}
    accuracy = 1 - len(wrong) / len(truth)
    assert accuracy >= 0.95, f"top-1 {accuracy:.3f}; wrong (truth, predicted): {wrong}"


# --- the training script ----------------------------------------------------------------------------


def test_shipped_checkpoint_matches_the_training_script_settings():
    from vivitcli.demo import train

    config = json.loads((MODEL_DIR / "config.json").read_text())
    for key, value in train.MODEL_CONFIG.items():
        assert config[key] == value, key
    assert json.loads((MODEL_DIR / "preprocessor_config.json").read_text()) == train.PREPROCESSOR_CONFIG


def test_training_script_writes_a_checkpoint_vivitcli_loads(tmp_path, capsys):
    import vivitcli
    from vivitcli.demo import train

    assert train.main(["--out", str(tmp_path), "--clips", "24", "--steps", "2", "--batch-size", "8",
                       "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and summary["clips"] == 24
    model = vivitcli.load_model(str(tmp_path), device="cpu")
    assert model.labels == list(synthetic.CLASSES) and model.label_source == "checkpoint"
    assert model.num_frames == train.NUM_FRAMES and model.image_size == train.IMAGE_SIZE
