#!/usr/bin/env bash
# Benchmark clips for bench_decode.py, generated once into bench/_work/ (git-ignored) with Debian's ffmpeg.
# testsrc2 (moving objects, gradients) plus temporal grain so the encoder spends camera-like bitrates
# (3-6 Mbit/s at 720p); H.264 High via x264 "fast" with its default 3 B-frames, 30 fps.
set -euo pipefail
cd "$(dirname "$0")/_work"
X264=(-c:v libx264 -preset fast -crf 23 -pix_fmt yuv420p -sc_threshold 0)
gen() { nice -n 5 ffmpeg -v error -y -f lavfi -i "$1" -t "$2" "${@:3}"; }
[ -f 720p_60s_gop250.mp4 ] || gen "testsrc2=size=1280x720:rate=30,noise=alls=6:allf=t" 60 \
    "${X264[@]}" -g 250 720p_60s_gop250.mp4 "${X264[@]}" -g 30 720p_60s_gop30.mp4
[ -f 4k_10s_gop250.mp4 ] || gen "testsrc2=size=3840x2160:rate=30,noise=alls=6:allf=t" 10 "${X264[@]}" -g 250 4k_10s_gop250.mp4
[ -f 480p_10min_gop250.mp4 ] || gen "testsrc2=size=854x480:rate=30,noise=alls=6:allf=t" 600 "${X264[@]}" -g 250 480p_10min_gop250.mp4
ls -la
