"""bench/gpu.sh in its dry mode (--device cpu, tiny models and clips): every step runs and the report holds
what each step measured. The real run needs a GPU machine; this keeps the script from rotting meanwhile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg CLI makes the clips")
def test_gpu_script_dry_run(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "VIVIT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--device", "cpu"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "gpu-report.json").read_text())
    assert {name: s["status"] for name, s in report["steps"].items()} == {
        "install": "ok", "benchmark": "ok", "clips": "ok", "decode": "ok", "classify_default": "ok",
        "classify_cores": "ok", "ray": "ok"}
    assert report["environment"]["dry_run"] is True and report["environment"]["device"] == "cpu"
    (row,) = report["benchmark"]["rows"]
    assert row["eager_status"] == row["sdpa_status"] == "ok" and row["max_abs_diff"] < 1e-4
    assert {r["kind"] for r in report["decode_workers"]["rows"]} == {"thread", "process"}
    assert all(r["shape"] == [16, 3, 224, 224] for r in report["decode_workers"]["rows"])
    runs = report["classify"]
    assert set(runs) == {"default workers", f"workers={os.cpu_count()}"}
    for run in runs.values():
        assert run["returncode"] == 0 and run["files"] == run["records"] == 3 and run["errors"] == 0
        assert run["peak_rss_mib"] > 50
    try:  # the Ray step (bench/bench_ray.py --dry) where the ray extra is installed, as in CI
        import pyarrow  # noqa: F401
        import ray  # noqa: F401
    except ImportError:
        pass
    else:
        (ray_row,) = json.loads((tmp_path / "ray.json").read_text())
        assert ray_row["model"] == "demo" and ray_row["top1_agree"] is True and ray_row["ray_s"] > 0
    text = (tmp_path / "gpu-report.md").read_text()
    assert "## vivit benchmark" in text and "## Decode workers" in text and "## End to end" in text
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--bogus"], env=env, check=True,
                       capture_output=True)
