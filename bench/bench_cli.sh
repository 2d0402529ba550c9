#!/usr/bin/env bash
# One `vivit classify` call over N files vs N single-file calls in a shell loop (the reference), same files,
# same tiny model, same machine, same run. Also times `vivit --help` (which must not import torch).
#
#   bench/bench_cli.sh [N=20]
#
# Needs the test extra (transformers writes the tiny checkpoint; PyAV writes the videos).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-20}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

python - "$WORK" "$N" <<'EOF'
import sys
from pathlib import Path
from tests.checkpoints import make_tiny_vivit
from tests.videos import write_video
work, n = Path(sys.argv[1]), int(sys.argv[2])
make_tiny_vivit(work / "model", num_labels=5)
(work / "videos").mkdir()
for i in range(n):
    write_video(work / "videos" / f"clip{i:03d}.mp4", num_frames=48, width=128, height=96)
EOF

now() { echo "$EPOCHREALTIME"; }  # bash 5: no process started to read the clock
elapsed() { python -c "print(f'{$2 - $1:.2f}')"; }

# Warm the page cache and Python's bytecode cache so neither side pays first-run costs.
vivit classify "$WORK/videos" -m "$WORK/model" -q > /dev/null

t0=$(now)
for f in "$WORK"/videos/*.mp4; do
    vivit classify "$f" -m "$WORK/model" -q > "$WORK/loop.$(basename "$f").jsonl"
done
t1=$(now)
vivit classify "$WORK/videos" -m "$WORK/model" -q > "$WORK/one.jsonl"
t2=$(now)

loop=$(elapsed "$t0" "$t1")
one=$(elapsed "$t1" "$t2")
cat "$WORK"/loop.*.jsonl | python -c '
import json, sys
a = [json.loads(l) for l in sys.stdin]
b = [json.loads(l) for l in open(sys.argv[1])]
assert [r["path"] for r in a] == [r["path"] for r in b], "different files"
assert [[x["index"] for x in r["labels"]] for r in a] == [[x["index"] for x in r["labels"]] for r in b], "different labels"
' "$WORK/one.jsonl"

help_times=()
for _ in 1 2 3 4 5; do
    h0=$(now); vivit --help > /dev/null; h1=$(now)
    help_times+=("$(elapsed "$h0" "$h1")")
done
help_median=$(printf '%s\n' "${help_times[@]}" | sort -n | sed -n 3p)

echo "files: $N ($(nproc) CPUs)"
echo "loop of $N single-file calls: ${loop} s"
echo "one call over $N files:       ${one} s"
python -c "print(f'speed-up: {$loop / $one:.1f}x (same labels in both)')"
echo "vivit --help: ${help_median} s (median of 5)"
