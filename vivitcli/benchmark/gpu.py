"""Helpers for bench/gpu.sh: random-weight checkpoints, timed `vivit classify` runs, and the one report.

    python -m vivitcli.benchmark.gpu checkpoint random-videomae-b DIR [--tiny]
    python -m vivitcli.benchmark.gpu classify DIR --json out.json -- --model CKPT --device cuda --workers 16
    python -m vivitcli.benchmark.gpu report OUT        # OUT/*.json -> OUT/gpu-report.json + OUT/gpu-report.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# --tiny: the same architectures scaled down so the dry run (CI, --device cpu) takes seconds.
TINY = {"image_size": 32, "num_frames": 4, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64}


def model_config(name: str, tiny: bool = False) -> dict:
    """The config.json dict of a random-weight model name (models/names.py), optionally scaled down."""
    from vivitcli.benchmark.source import resolve
    from vivitcli.errors import UsageError

    config = resolve(name)
    if config is None:
        raise UsageError(f"{name!r} is not a random-weight model name (use random-vivit-b or random-videomae-b)")
    if tiny:
        config.update(TINY)
        if config["model_type"] == "vivit":
            config["tubelet_size"] = [2, 16, 16]
        else:
            config["patch_size"] = 16
    return config


def write_checkpoint(name: str, dst: Path, tiny: bool = False) -> Path:
    """A Hugging Face layout checkpoint (config.json + model.safetensors) with seeded random weights."""
    from vivitcli.convert.output import write_safetensors
    from vivitcli.models import build_model
    from vivitcli.models.checkpoint import native_to_hf

    config = model_config(name, tiny)
    model = build_model(config, device="cpu", dtype="float32", seed=0, name=name)
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_safetensors(dst / "model.safetensors", native_to_hf(model.state_dict(), model.cfg))
    return dst


def timed_command(argv: list[str]) -> dict:
    """Run argv; wall seconds, exit status, stdout, and the child's own peak RSS (wait4's rusage)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    # ru_maxrss is KiB on Linux.
    return {"argv": argv, "returncode": proc.returncode, "seconds": wall, "peak_rss_mib": usage.ru_maxrss / 1024,
            "stdout": stdout, "stderr_tail": stderr[-2000:]}


def classify(folder: str, extra: list[str]) -> dict:
    """`vivit classify FOLDER --format jsonl EXTRA...` timed; clips per second and per-file errors counted."""
    files = sorted(str(p) for p in Path(folder).iterdir() if p.is_file())
    result = timed_command([sys.executable, "-m", "vivitcli", "classify", folder, "--format", "jsonl", *extra])
    records = [json.loads(line) for line in result.pop("stdout").splitlines() if line.strip().startswith("{")]
    result.update(files=len(files), records=len(records), errors=sum(1 for r in records if r.get("error")),
                  s_per_clip=result["seconds"] / max(1, len(files)),
                  top1=[(r["path"], r["labels"][0]["label"] if r.get("labels") else None) for r in records])
    return result


# ---- report -------------------------------------------------------------------------------------------------
def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def report(out: Path) -> dict:
    """Merge what gpu.sh wrote under `out` into gpu-report.json and a markdown summary gpu-report.md."""
    data = {"environment": _load(out / "environment.json"), "benchmark": _load(out / "benchmark.json"),
            "decode_workers": _load(out / "decode_workers.json"), "classify": _load(out / "classify.json"),
            "steps": _load(out / "steps.json")}
    (out / "gpu-report.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = ["# vivitcli GPU run", ""]
    env = data["environment"] or {}
    if env:
        lines += [f"- {k}: {v}" for k, v in env.items()] + [""]
    steps = data["steps"] or {}
    if steps:
        lines += ["| step | status | seconds |", "|---|---|---:|"]
        lines += [f"| {k} | {v.get('status')} | {v.get('seconds', 0):.1f} |" for k, v in steps.items()] + [""]
    bench = data["benchmark"] or {}
    if bench.get("rows"):
        lines += ["## vivit benchmark (ms/clip, median step / batch)", "",
                  "| model | dtype | batch | eager | sdpa | speedup % | noisy | mem eager MB | mem sdpa MB | max abs diff |",
                  "|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
        for r in bench["rows"]:
            lines.append(f"| {r['model']} | {r['dtype']} | {r['batch_size']} | {_f(r['eager_ms_per_clip'])} | "
                         f"{_f(r['sdpa_ms_per_clip'])} | {_f(r['speedup_pct'], 1)} | {r.get('noisy')} | "
                         f"{_f(r['eager_mem_mb'], 0)} | {_f(r['sdpa_mem_mb'], 0)} | {r['max_abs_diff']} |")
        lines.append("")
    workers = data["decode_workers"] or {}
    if workers.get("rows"):
        lines += [f"## Decode workers ({workers.get('cpu_count')} CPUs; clips/s, read_clip per file)", "",
                  "| kind | workers | clips/s | seconds |", "|---|---:|---:|---:|"]
        lines += [f"| {r['kind']} | {r['workers']} | {r['clips_per_s']:.2f} | {r['seconds']:.2f} |"
                  for r in workers["rows"]]
        best = max(workers["rows"], key=lambda r: r["clips_per_s"])
        lines += ["", f"Fastest: {best['kind']} x{best['workers']}.", ""]
    runs = data["classify"] or {}
    if runs:
        lines += ["## End to end: vivit classify on the generated folder", "",
                  "| run | files | errors | wall s | s/clip | peak RSS MiB | exit |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in runs.items():
            lines.append(f"| {name} | {r['files']} | {r['errors']} | {r['seconds']:.2f} | {r['s_per_clip']:.3f} | "
                         f"{r['peak_rss_mib']:.0f} | {r['returncode']} |")
        lines.append("")
    (out / "gpu-report.md").write_text("\n".join(lines) + "\n")
    return data


def _f(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("checkpoint")
    c.add_argument("name")
    c.add_argument("dst", type=Path)
    c.add_argument("--tiny", action="store_true")
    k = sub.add_parser("classify")
    k.add_argument("folder")
    k.add_argument("--json", type=Path, required=True)
    k.add_argument("--name", required=True)
    k.add_argument("extra", nargs=argparse.REMAINDER)
    r = sub.add_parser("report")
    r.add_argument("out", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "checkpoint":
        print(write_checkpoint(args.name, args.dst, args.tiny))
    elif args.cmd == "classify":
        runs = _load(args.json) or {}
        extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
        runs[args.name] = classify(args.folder, extra)
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
        print(f"{args.name}: {runs[args.name]['seconds']:.2f} s, {runs[args.name]['records']} records, "
              f"exit {runs[args.name]['returncode']}", flush=True)
        if runs[args.name]["returncode"] not in (0, 1):
            sys.stderr.write(runs[args.name]["stderr_tail"])
    else:
        report(args.out)
        print(args.out / "gpu-report.md")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
