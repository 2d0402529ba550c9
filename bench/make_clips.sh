#!/usr/bin/env bash
# Benchmark clips for bench_decode.py, generated once into bench/_work/ (git-ignored) with Debian's ffmpeg
# (`apt-get install -y ffmpeg`). testsrc2 (moving objects, gradients, text) plus light temporal grain, so
# the encoder spends camera-like bitrates (about 3 Mbit/s at 720p with GOP 250); H.264 High via x264
# with 3 B-frames (its default), 30 fps. The 10-minute clip uses x264's "veryfast" preset to keep its
# generation within minutes; the others "fast".
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p _work && cd _work
SRC="noise=alls=2:allf=t"
X264=(-c:v libx264 -crf 23 -pix_fmt yuv420p -sc_threshold 0 -bf 3)
gen() {  # output seconds size gop preset
    [ -f "$1" ] && return 0
    nice -n 5 ffmpeg -v error -y -f lavfi -i "testsrc2=size=$3:rate=30,$SRC" -t "$2" \
        "${X264[@]}" -preset "$5" -g "$4" "tmp_$1"
    mv "tmp_$1" "$1"
}
gen 720p_60s_gop250.mp4 60 1280x720 250 fast
gen 720p_60s_gop30.mp4 60 1280x720 30 fast
gen 4k_10s_gop250.mp4 10 3840x2160 250 fast
gen 480p_10min_gop250.mp4 600 854x480 250 veryfast
ls -la
