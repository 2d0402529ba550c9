"""Benchmark rows as a human table (the transformers docs' layout, as markdown), JSON or CSV.

Machine formats carry only data: JSON is one object {"schema", "environment", "rows": [...]} with rows
keyed as rows.FIELDS; CSV is a header of rows.FIELDS and one line per row, empty where not measured.
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform

from vivitcli.benchmark.rows import FIELDS, Row
from vivitcli.models.backends.cpu import cpu_name
from vivitcli.benchmark.spec import OK, OOM, SKIPPED

SCHEMA = "vivitcli.benchmark/1"


def environment(device: str, memory_method: str) -> dict:
    """Where the numbers come from: versions, device name, thread count, memory method, definitions."""
    return {
        **machine(device),
        "memory_method": memory_method,
        "ms_per_clip": "median step time / batch size",
        "speedup_pct": "(eager ms / sdpa ms - 1) * 100",
        "spread_ms": "slowest - fastest timed step, per clip; noisy: a side's spread exceeds |eager - sdpa|",
        "mem_saved_pct": "(eager MB / sdpa MB - 1) * 100, MB = 2**20 bytes",
        "max_abs_diff": "max |eager - sdpa| over the first step's outputs, in float32",
    }


def machine(device: str) -> dict:
    """Versions, device name and thread count."""
    import torch

    from vivitcli import __version__

    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    elif dev.type == "mps":
        name = "Apple MPS"
    else:
        name = cpu_name()
    return {
        "vivitcli_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": device,
        "device_name": name,
        "cpu_threads": torch.get_num_threads(),
    }


def to_json(rows: list[Row], env: dict) -> str:
    records = [{k: _json_value(v) for k, v in r.to_dict().items()} for r in rows]
    return json.dumps({"schema": SCHEMA, "environment": env, "rows": records}, indent=2, allow_nan=False) + "\n"


def _json_value(value):
    # JSON has no NaN: a NaN max_abs_diff (an output with NaN) is written as the string "nan".
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def to_csv(rows: list[Row]) -> str:
    return records_to_csv((row.to_dict() for row in rows), FIELDS)


def records_to_csv(records, fields) -> str:
    """A header of `fields`, then one line per record dict; empty cells where a value is None."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fields)
    for record in records:
        writer.writerow(["" if record[k] is None else record[k] for k in fields])
    return buf.getvalue()


def _ms(value):
    return "" if value is None else f"{value:.2f}" if value >= 0.995 else f"{value:.3g}"


def _pct(value):
    return "" if value is None else f"{value:.1f}"


def _mb(value):
    return "" if value is None else f"{value:.1f}"


def _diff(value):
    if value is None:
        return ""
    return "nan" if math.isnan(value) else f"{value:.1e}"


def _spread(d: dict) -> str:
    spreads = [v for v in (d["eager_spread_ms"], d["sdpa_spread_ms"]) if v is not None]
    return _ms(max(spreads)) if spreads else ""


def _cell(row: Row, side: str, text: str) -> str:
    """A measured value, or what happened instead (OOM, skipped, error)."""
    m = getattr(row, side)
    if m.status == OK:
        return text
    return {OOM: "OOM", SKIPPED: "skipped"}.get(m.status, "error")


def to_table(rows: list[Row], env: dict) -> str:
    """Markdown tables, one per (model, mode), in the column layout of the transformers docs plus ms per
    clip and max abs diff; notes for rows that did not run; the memory method underneath."""
    out = []
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.model, row.mode), []).append(row)
    for (model, mode), group in groups.items():
        steps_name = "num_training_steps" if mode == "training" else "num_batches"
        header = [steps_name, "batch_size", "dtype", "is cuda", "is half", "eager (ms/clip)",
                  "sdpa (ms/clip)", "Speedup (%)", "spread (ms)", "Mem eager (MB)", "Mem sdpa (MB)",
                  "Mem saved (%)", "max abs diff"]
        body = []
        for r in group:
            d = r.to_dict()
            body.append([
                str(r.num_batches), str(r.batch_size), r.dtype, str(r.is_cuda), str(r.is_half),
                _cell(r, "eager", _ms(d["eager_ms_per_clip"])), _cell(r, "sdpa", _ms(d["sdpa_ms_per_clip"])),
                _pct(d["speedup_pct"]) + (" *" if d["noisy"] else ""), _spread(d),
                _cell(r, "eager", _mb(d["eager_mem_mb"])), _cell(r, "sdpa", _mb(d["sdpa_mem_mb"])),
                _pct(d["mem_saved_pct"]), _diff(d["max_abs_diff"]),
            ])
        backend = group[0].backend
        where = f"{env['device']}" + (f", {backend}" if backend != "torch" else "")
        out.append(f"### {model}: {mode} ({where}, {env['device_name']}, torch {env['torch_version']})")
        out.append("")
        out.extend(_markdown(header, body))
        notes = [f"- batch {r.batch_size} {r.dtype}: {r.note}" for r in group if r.note]
        if any(r.noisy for r in group):
            notes.append("- \\* noisy: the step-to-step spread exceeds the eager/sdpa difference; the speedup is "
                         "within the noise (more --steps, or a quieter machine)")
        if notes:
            out.append("")
            out.extend(notes)
        out.append("")
    out.append(f"Memory: {env['memory_method']}. Speedup (%) = (eager/sdpa - 1) * 100; "
               f"Mem saved (%) = (eager MB / sdpa MB - 1) * 100; ms/clip = median step / batch size.")
    return "\n".join(out) + "\n"


def _markdown(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.rjust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"]
    for row in body:
        lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |")
    return lines
