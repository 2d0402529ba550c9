"""One benchmark configuration in a fresh Python process, so that its peak RSS is its own.

    python -m vivitcli.benchmark.worker RESULT.json < CONFIG.json

The result goes to a file rather than stdout: libraries may print, a file cannot be mixed up with that.
`run_isolated` is the parent side.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile

from vivitcli.benchmark.spec import ERROR, OOM, Config, Measurement


def run_isolated(config: Config, *, timeout: float | None = None) -> Measurement:
    """Measure `config` in a child process; a child the kernel killed (out of memory) becomes an OOM row."""
    fd, result_path = tempfile.mkstemp(prefix="vivit-bench-", suffix=".json")
    os.close(fd)
    try:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "vivitcli.benchmark.worker", result_path],
                input=json.dumps(config.to_dict()), capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return Measurement(status=ERROR, error=f"timed out after {timeout:g} s")
        return interpret(proc.returncode, _read(result_path), proc.stderr)
    finally:
        os.unlink(result_path)


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def interpret(returncode: int, result_text: str, stderr: str) -> Measurement:
    """Turn a finished worker (exit status, result file text, stderr) into a Measurement."""
    if returncode == 0 and result_text.strip():
        return Measurement.from_dict(json.loads(result_text))
    if returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
        return Measurement(status=OOM, error="worker killed by SIGKILL (the kernel's out-of-memory killer)")
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    detail = lines[-1].strip() if lines else "no message"
    return Measurement(status=ERROR, error=f"worker exited with status {returncode}: {detail}")


def main(argv: list[str]) -> int:
    from vivitcli.benchmark import memory
    from vivitcli.benchmark.measure import measure

    memory.volunteer_for_oom_killer()
    config = Config.from_dict(json.loads(sys.stdin.read()))
    # Code and libraries every configuration loads are in place before measure() reads the baseline RSS.
    import torch

    import vivitcli.models  # noqa: F401

    torch.zeros(1) + 1
    result = measure(config, isolated=True)
    with open(argv[0], "w") as fh:
        json.dump(result.to_dict(), fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
