#!/usr/bin/env bash
# OBS on Linux, for real: OBS Studio under Xvfb with a Media Source on udp://127.0.0.1:PORT,
# rt-dtgan live sending the driven portrait there, and a screenshot of OBS showing it.
#
#   tools/obs_check.sh DRIVER PORTRAIT OUT.png
#
# Needs Debian's xvfb, xdotool, imagemagick and obs-studio (apt install xvfb xdotool
# imagemagick obs-studio). OBS runs with a throwaway home, so the user's OBS settings are
# untouched; its scene collection "rt-dtgan" holds the one Media Source. docs/obs.md shows
# the result.
set -euo pipefail
DRIVER=$1
PORTRAIT=$2
OUT=$3
PORT=${PORT:-5000}
DISPLAY_NUMBER=${DISPLAY_NUMBER:-97}
RT_DTGAN=${RT_DTGAN:-.venv/bin/rt-dtgan}

home=$(mktemp -d)
scenes="$home/.config/obs-studio/basic/scenes"
mkdir -p "$scenes" "$home/.config/obs-studio/basic/profiles/rt-dtgan"
cat >"$home/.config/obs-studio/global.ini" <<EOF
[General]
FirstRun=true
EnableAutoUpdates=false
[Basic]
Profile=rt-dtgan
ProfileDir=rt-dtgan
SceneCollection=rt-dtgan
SceneCollectionFile=rt-dtgan
EOF
cat >"$home/.config/obs-studio/basic/profiles/rt-dtgan/basic.ini" <<EOF
[General]
Name=rt-dtgan
[Video]
BaseCX=1280
BaseCY=720
OutputCX=1280
OutputCY=720
FPSType=0
FPSCommon=30
EOF
cat >"$scenes/rt-dtgan.json" <<EOF
{"current_scene": "Scene", "current_program_scene": "Scene", "scene_order": [{"name": "Scene"}], "name": "rt-dtgan",
 "sources": [
  {"id": "scene", "versioned_id": "scene", "name": "Scene",
   "settings": {"id_counter": 1, "items": [{"name": "rt-dtgan live", "id": 1, "visible": true, "pos": {"x": 0.0, "y": 0.0},
     "scale": {"x": 1.0, "y": 1.0}, "align": 5, "bounds_type": 2, "bounds_align": 0, "bounds": {"x": 1280.0, "y": 720.0}}]}},
  {"id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": "rt-dtgan live",
   "settings": {"is_local_file": false, "input": "udp://127.0.0.1:$PORT", "input_format": "mpegts",
                "buffering_mb": 1, "restart_on_activate": true, "hw_decode": false}}]}
EOF

export DISPLAY=":$DISPLAY_NUMBER" LIBGL_ALWAYS_SOFTWARE=1
Xvfb "$DISPLAY" -screen 0 1600x1200x24 +extension GLX >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb ${obs:-} ${live:-} 2>/dev/null || true; rm -rf "$home"' EXIT
sleep 1
HOME=$home obs --collection rt-dtgan --profile rt-dtgan --scene Scene --disable-shutdown-check >"$home/obs.log" 2>&1 &
obs=$!
sleep 10
"$RT_DTGAN" live --source "$DRIVER" --target "$PORTRAIT" --output "udp://127.0.0.1:$PORT" 2>"$home/live.log" &
live=$!
sleep 8
for window in $(xdotool search --onlyvisible --class obs); do  # no window manager: size OBS ourselves
    xdotool windowsize "$window" 1600 1200
done
sleep 6
import -window root "$OUT"
grep -a "ffmpeg_source\|Media Source\|rt-dtgan live" "$home/obs.log" | head -5 || true
tr '\r' '\n' <"$home/live.log" | grep "fps" | tail -1
echo "wrote $OUT"
