"""Full-size `vivit convert` runs: time, peak memory and verification error, against an I/O floor.

Columns: the floor (read + save the same tensors), `vivit convert --no-verify` and its ratio to the floor,
`vivit convert` with verification (two full-size float32 forwards on CPU), peak RSS of floor and convert, the
verification's max |Δ| and transformers' max |Δlogits| between the source HF model and the converted one.

Builds random-weight ViViT-B/16x2 (32×224²) and VideoMAE-B (16×224²) models with transformers, writes them
in three source formats — an HF directory with pytorch_model.bin, an original VideoMAE .pth, a Scenic Flax
msgpack (inverse mappings from tests/convert_formats.py) — then runs `vivit convert` on each in a child
process. The floor is the same child doing only torch.load(weights_only=True) / msgpack read + safetensors
save of the same bytes, measured in the same run. transformers is needed (test extra).

The ViViT-B/16x2 factorised encoder (random Scenic tree, 12 spatial + 4 temporal layers, 32×224²) has no
transformers class: its last column is "-"; its verification compares with the forward written over the tree.

    python bench/bench_convert.py [--workdir DIR] [--keep] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLOOR = r"""
import sys, torch
from safetensors.torch import save_file
src, dst = sys.argv[1], sys.argv[2]
if src.endswith("checkpoint"):
    import numpy as np
    from vivitcli.convert import flax_msgpack
    tree = flax_msgpack.load(src)
    flat = {}
    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, prefix + k + "/")
            elif isinstance(v, np.ndarray) and v.ndim:
                flat[prefix + k] = torch.from_numpy(np.array(v))
    walk(tree, "")
else:
    obj = torch.load(src, map_location="cpu", weights_only=True)
    flat = obj.get("model", obj)
save_file({k: v.contiguous() for k, v in flat.items()}, dst)
"""


# Peak RSS is read by the child itself (VmHWM at exit): a forked child's ru_maxrss starts at the parent's size.
PEAK = r"""
import atexit, runpy, sys
def _peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("PEAK_KIB " + line.split()[1] + "\n")
atexit.register(_peak)
import os
_os_exit = os._exit
def _exit(code):  # the CLI leaves through os._exit (no atexit): report first
    _peak(); sys.stderr.flush(); _os_exit(code)
os._exit = _exit
if sys.argv[1] == "-c":
    code = sys.argv[2]; sys.argv = ["-c", *sys.argv[3:]]; exec(compile(code, "<floor>", "exec"), {})
else:
    sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name="__main__")
"""


def child(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, output) of `python <args>` in a child process."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    peak = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_KIB"))
    return wall, peak / 1024, proc.stdout


def build_sources(work: Path) -> list[tuple[str, Path, list[str], Path, Path]]:
    """[(name, source path, extra flags, HF reference dir, floor input file)]"""
    import torch
    from safetensors.torch import load_file
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VivitConfig, VivitForVideoClassification

    from tests.convert_formats import flax_msgpack_bytes, scenic_train_state, videomae_to_original, vivit_to_scenic
    from vivitcli.models.presets import preset

    torch.manual_seed(0)
    out = []
    vcfg = {k: v for k, v in preset("vivit").items() if k != "architectures"}
    vivit = VivitForVideoClassification(VivitConfig(**vcfg)).eval()
    vivit.save_pretrained(work / "vivit_hf")
    sd = load_file(str(work / "vivit_hf" / "model.safetensors"))
    torch.save(sd, work / "vivit_hf" / "pytorch_model.bin")
    (work / "vivit_hf" / "model.safetensors").unlink()
    out.append(("ViViT-B HF pytorch_model.bin", work / "vivit_hf", [], work / "vivit_hf",
                work / "vivit_hf" / "pytorch_model.bin"))

    (work / "scenic").mkdir()
    tree = scenic_train_state(vivit_to_scenic(sd, vcfg["num_attention_heads"]))
    (work / "scenic" / "checkpoint").write_bytes(flax_msgpack_bytes(tree))
    del tree
    out.append(("ViViT-B Scenic Flax msgpack", work / "scenic" / "checkpoint", [], work / "vivit_hf",
                work / "scenic" / "checkpoint"))

    mcfg = {k: v for k, v in preset("videomae").items() if k != "architectures"}
    mcfg["layer_norm_eps"] = 1e-6  # the release's LayerNorms
    mae = VideoMAEForVideoClassification(VideoMAEConfig(**mcfg)).eval()
    mae.save_pretrained(work / "videomae_hf")
    msd = load_file(str(work / "videomae_hf" / "model.safetensors"))
    torch.save({"model": videomae_to_original(msd)}, work / "videomae.pth")
    out.append(("VideoMAE-B original .pth", work / "videomae.pth", ["--labels", "kinetics400"],
                work / "videomae_hf", work / "videomae.pth"))

    from tests.convert_formats import scenic_fe_params

    (work / "scenic_fe").mkdir()
    fe = scenic_fe_params(dim=768, frames=32, image=224, tubelet=(2, 16, 16), spatial=(12, 12, 3072),
                          temporal=(4, 12, 3072), classes=400, scale=0.02)
    (work / "scenic_fe" / "checkpoint").write_bytes(flax_msgpack_bytes(scenic_train_state(fe)))
    del fe
    out.append(("ViViT-B FE Scenic Flax msgpack", work / "scenic_fe" / "checkpoint", ["--labels", "kinetics400"],
                None, work / "scenic_fe" / "checkpoint"))
    return out


def transformers_delta(ref_dir: Path, dst: Path) -> float:
    """max |Δlogits| between transformers on the source HF model and on the converted one (one clip)."""
    import torch
    import transformers

    cfg = json.loads((ref_dir / "config.json").read_text())
    cls = getattr(transformers, cfg["architectures"][0])
    gen = torch.Generator().manual_seed(1)
    pv = torch.randn(1, cfg["num_frames"], 3, 224, 224, generator=gen)
    with torch.no_grad():
        a = cls.from_pretrained(str(ref_dir), attn_implementation="eager").eval()(pixel_values=pv).logits
        b = cls.from_pretrained(str(dst), attn_implementation="eager").eval()(pixel_values=pv).logits
    return float((a - b).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--only", default="", help="run the sources whose name contains this (e.g. FE)")
    args = parser.parse_args()
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_convert_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sources = build_sources(work)
        print(f"torch {__import__('torch').__version__}, {os.cpu_count()} CPUs\n", flush=True)
        print(f"{'source':30} {'floor s':>8} {'--no-verify s':>14} {'ratio':>6} {'convert s':>10} "
              f"{'floor MiB':>10} {'conv MiB':>9} {'verify max|Δ|':>14} {'transformers max|Δ|':>20}")
        for name, src, flags, ref_dir, floor_in in sources:
            if args.only not in name:
                continue
            floor_s, floor_mib, _ = child(["-c", FLOOR, str(floor_in), str(work / "floor.st")])
            dst = work / ("out_" + src.parent.name + "_" + src.name)
            bare_s, _, _ = child(["vivitcli", "convert", str(src), str(dst), "--force", "--no-verify", *flags])
            conv_s, conv_mib, text = child(["vivitcli", "convert", str(src), str(dst), "--force", *flags])
            verify = next((line.split("=")[1].split("(")[0].strip() for line in text.splitlines()
                           if line.startswith("verify:")), "?")
            delta = f"{transformers_delta(ref_dir, dst):.2e}" if ref_dir is not None else "-"
            print(f"{name:30} {floor_s:8.1f} {bare_s:14.1f} {bare_s / floor_s:6.1f} {conv_s:10.1f} {floor_mib:10.0f} "
                  f"{conv_mib:9.0f} {verify:>14} {delta:>20}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
