#!/usr/bin/env bash
# One GPU run that proves (or disproves) vivitcli's GPU path, in under 8 minutes on one H100/H200-class GPU:
#
#   OUT=/some/dir bash bench/gpu.sh                  # the real run (CUDA)
#   OUT=/tmp/x    bash bench/gpu.sh --device cpu     # dry mode: tiny models and clips, seconds (CI runs this)
#
# Steps (each time-limited; a failed step is recorded and the rest still run):
#   1. install  what is missing: vivitcli itself (pip -e), a CUDA torch (only if torch cannot see the GPU)
#   2. benchmark  `vivit benchmark` random-vivit-b + random-videomae-b, float32/bfloat16/float16 x eager/sdpa
#                 x batch 1,2,4,8,16,32 (dry: tiny versions, float32, batch 1)
#   3. clips    a folder of generated 10 s 720p x264 clips (default GOP), 2 per CPU core (16..48)
#   4. decode   thread vs process decode workers at 1, half and all cores (vivitcli.benchmark.decode_workers)
#   5. classify `vivit classify` of that folder on the GPU: default workers, and workers = cores
#   6. report   $OUT/gpu-report.json + $OUT/gpu-report.md (vivitcli.benchmark.gpu report)
set -uo pipefail
set -a   # every variable below is exported: the steps run in child shells

DEVICE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --device=*) DEVICE="${1#*=}"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "bench/gpu.sh: unknown argument $1 (use --device cuda|cpu)" >&2; exit 2 ;;
  esac
done
DRY=0
[ "$DEVICE" = cpu ] && DRY=1

cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
WORK="$OUT/work"
mkdir -p "$WORK"
PY="${PYTHON:-python3}"
CORES="$(nproc 2>/dev/null || echo 2)"
STEPS_JSON="$OUT/steps.json"
echo '{}' > "$STEPS_JSON"
START_ALL=$(date +%s)

# step NAME TIMEOUT_S CMD...: run, time, record status in steps.json; never stop the script.
step() {
  local name="$1" limit="$2"; shift 2
  local t0 t1 status
  t0=$(date +%s.%N)
  echo "== $name ($(date -u +%H:%M:%S), limit ${limit}s)" >&2
  # A function runs in a child bash (so that timeout can stop it): functions and variables are exported.
  timeout "$limit" bash -c "$*" > "$OUT/$name.log" 2>&1
  status=$?
  t1=$(date +%s.%N)
  "$PY" - "$STEPS_JSON" "$name" "$status" "$t0" "$t1" <<'EOF'
import json, sys
path, name, status, t0, t1 = sys.argv[1:]
steps = json.load(open(path))
code = int(status)
steps[name] = {"status": "ok" if code == 0 else "timed out" if code == 124 else f"exit {code}",
               "seconds": float(t1) - float(t0)}
json.dump(steps, open(path, "w"), indent=2)
EOF
  [ "$status" -eq 0 ] || { echo "   $name: status $status, see $OUT/$name.log" >&2; tail -5 "$OUT/$name.log" >&2; }
  return 0
}

# ---- 1. install ----------------------------------------------------------------------------------------
install() {
  if ! "$PY" -c "import vivitcli" 2>/dev/null; then
    "$PY" -m pip install -q -e . || return 1
  fi
  if [ "$DRY" = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    # The PyPI torch wheel for Linux is the CUDA build.
    "$PY" -m pip install -q "torch==2.13.0" || return 1
  fi
  command -v ffmpeg >/dev/null || "$PY" -c "import av" || return 1
  "$PY" - > "$OUT/environment.json" <<EOF
import json, os, platform, subprocess, torch
env = {"device": "$DEVICE", "dry_run": bool($DRY), "cpu_count": os.cpu_count(), "python": platform.python_version(),
       "torch": torch.__version__, "cuda": torch.version.cuda,
       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
try:
    env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                        "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
except OSError:
    pass
print(json.dumps(env, indent=2))
EOF
}
export -f install
step install 240 install

# ---- 2. vivit benchmark --------------------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  # The plumbing only: one tiny model (its eager and sdpa workers), one batch size.
  "$PY" -m vivitcli.benchmark.gpu checkpoint random-videomae-b "$WORK/tiny-videomae" --tiny >/dev/null
  BENCH_ARGS=(-m "$WORK/tiny-videomae" -b 1 --dtype float32 --steps 2 --warmup 0 --device cpu --threads 1)
else
  BENCH_ARGS=(-m random-vivit-b -m random-videomae-b -b 1,2,4,8,16,32 --dtype float32,bfloat16,float16
              --steps 10 --warmup 3 --device "$DEVICE")
fi
BENCH_CMD=$(printf '%q ' "$PY" -m vivitcli benchmark "${BENCH_ARGS[@]}")
bench() { eval "$BENCH_CMD" --format json > "$OUT/benchmark.json"; }
export -f bench
step benchmark 300 bench

# ---- 3. clips --------------------------------------------------------------------------------------------
CLIPS="$WORK/clips"
mkdir -p "$CLIPS"
if [ "$DRY" = 1 ]; then N=3; SIZE=160x120; SECONDS_PER_CLIP=1; else
  N=$(( CORES * 2 )); [ "$N" -lt 16 ] && N=16; [ "$N" -gt 48 ] && N=48; SIZE=1280x720; SECONDS_PER_CLIP=10; fi
make_clip() {  # index: moving test pattern + grain, x264 at its default GOP (keyint 250)
  ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=$SIZE:rate=30:duration=$SECONDS_PER_CLIP" \
    -vf "noise=alls=12:allf=t" -c:v libx264 -preset veryfast -threads 1 -pix_fmt yuv420p "$CLIPS/clip$1.mp4"
}
clips() { seq 1 "$N" | xargs -P "$CORES" -I{} bash -c 'make_clip {}'; }
export -f make_clip clips
step clips 120 clips

# ---- 4. decode workers: threads vs processes -------------------------------------------------------------
HALF=$(( CORES / 2 )); [ "$HALF" -lt 1 ] && HALF=1
WORKERS=$(printf "%s\n" 1 "$HALF" "$CORES" | sort -nu | paste -sd, -)
[ "$DRY" = 1 ] && WORKERS="$CORES"
decode() { "$PY" -m vivitcli.benchmark.decode_workers --kind thread,process --workers "$WORKERS" \
             --json "$OUT/decode_workers.json" "$CLIPS"/*.mp4; }
export -f decode
step decode 150 decode

# ---- 5. end-to-end classify on the device --------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  CKPT="$WORK/tiny-videomae"; BATCH=2
else
  "$PY" -m vivitcli.benchmark.gpu checkpoint random-videomae-b "$WORK/videomae-b" >/dev/null; CKPT="$WORK/videomae-b"; BATCH=16
fi
classify_default() { "$PY" -m vivitcli.benchmark.gpu classify --json "$OUT/classify.json" \
                       --name "default workers" "$CLIPS" -- --model "$CKPT" --device "$DEVICE" --batch-size "$BATCH"; }
classify_cores() { "$PY" -m vivitcli.benchmark.gpu classify --json "$OUT/classify.json" \
                     --name "workers=$CORES" "$CLIPS" -- --model "$CKPT" --device "$DEVICE" --batch-size "$BATCH" \
                     --workers "$CORES"; }
export -f classify_default classify_cores
step classify_default 120 classify_default
step classify_cores 120 classify_cores

# ---- 5b. the same job on Ray: one GPU model actor fed by CPU decode tasks (vivit classify --ray) ---------
ray_job() {
  if ! "$PY" -c "import ray, pyarrow" 2>/dev/null; then echo "ray not installed: skipped" >&2; return 0; fi
  if [ "$DRY" = 1 ]; then "$PY" bench/bench_ray.py --dry --json "$OUT/ray.json"
  else "$PY" bench/bench_ray.py --clips 40 --models videomae-b --reps 1 --device "$DEVICE" --gpus-per-worker 1 \
         --decoders "$CORES" --batch-size 16 --json "$OUT/ray.json"; fi
}
export -f ray_job
step ray 150 ray_job

# ---- 6. report -------------------------------------------------------------------------------------------
"$PY" -m vivitcli.benchmark.gpu report "$OUT" >/dev/null
echo "bench/gpu.sh: $(( $(date +%s) - START_ALL )) s; report: $OUT/gpu-report.md" >&2
