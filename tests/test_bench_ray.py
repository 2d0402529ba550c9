"""bench/bench_ray.py's dry mode (what bench/gpu.sh runs before the real GPU measurement) runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytest.importorskip("pyarrow")

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "bench_ray.py"


def test_dry_run_prints_the_ratio_and_agrees(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry", "--json", str(out)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| model | device |" in proc.stdout and "ray.init:" in proc.stdout
    (row,) = json.loads(out.read_text())
    assert row["model"] == "demo" and row["clips"] == 4 and row["top1_agree"] is True
    assert row["local_s"] > 0 and row["ray_s"] > 0 and row["ratio"] == pytest.approx(row["ray_s"] / row["local_s"])
