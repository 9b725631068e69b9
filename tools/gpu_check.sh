#!/usr/bin/env bash
# The GPU path's device check, run as it is by a session with a lent NVIDIA GPU, from the
# repository root, in under 8 minutes on an H200 (every step has its own time limit):
#
#   tools/gpu_check.sh             # results in $OUT (default: gpu-check/)
#   tools/gpu_check.sh --dry-run   # list the steps and their limits, run nothing
#
# Steps: the CUDA and TensorRT tests (TensorRT's skip, saying so, where it is absent);
# bench/fps.py for torch eager and CUDA graph replay at 128 and 256 px for 1, 8, 32 and 64
# streams; bench/profile_streams.py at 256 px (eager, then with cuDNN's per-shape algorithm
# search); a 5,000-frame long run with G in float16 and its return to the first output;
# 100 steps of GAN training for a speed figure; the shipped geometry model's engine; and
# last torch.compile at 256 px (one compilation a step graph shape; at 128 px it measured
# no faster than eager, 2026-11-30). The limits add up to 7.4 minutes; on an H200 on
# 2026-11-30 the steps took 55 to 75 s, 25, 29, 35, 50, 17, (geometry not yet run), 64.
#
# Everything lands in two files, as few as a device tool brings back: $OUT/gpu_check.json
# (one entry per step: command, exit status, seconds, and the step's own JSON) and
# $OUT/gpu_check.log (the steps' output). The JSON is rewritten after every step, so a
# run stopped early keeps what it finished. Python packages the machine lacks (pyav, pyzmq)
# install first from wheels in .whl/ when that folder exists.
set -uo pipefail

DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
PYTHON=${PYTHON:-python3}
OUT=${OUT:-gpu-check}
PARTS=$(mktemp -d)
LOG="$OUT/gpu_check.log"

step() {  # step NAME LIMIT_SECONDS COMMAND...: run it, record it; a step's JSON goes to $PARTS/NAME.json
    local name=$1 limit=$2
    shift 2
    if ((DRY_RUN)); then
        printf '%-14s %4s s  %s\n' "$name" "$limit" "$*"
        return
    fi
    echo "=== $name: $*" >>"$LOG"
    local began=$SECONDS
    timeout "$limit" "$@" >>"$LOG" 2>&1
    local status=$?
    printf '{"command": "%s", "exit_status": %d, "seconds": %d, "limit_seconds": %d}\n' \
        "$*" "$status" $((SECONDS - began)) "$limit" >"$PARTS/$name.step"
    echo "=== $name: exit $status after $((SECONDS - began)) s" | tee -a "$LOG"
    "$PYTHON" - "$PARTS" "$OUT/gpu_check.json" <<'EOF'
import json, sys
from pathlib import Path
parts, summary = Path(sys.argv[1]), {}
for record in sorted(parts.glob("*.step")):
    entry = json.loads(record.read_text())
    result = record.with_suffix(".json")
    entry["result"] = json.loads(result.read_text()) if result.is_file() else None
    summary[record.stem] = entry
Path(sys.argv[2]).write_text(json.dumps(summary, indent=1) + "\n")
EOF
}

if ((!DRY_RUN)); then
    mkdir -p "$OUT"
    : >"$LOG"
    if [[ -d .whl ]]; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-check-site .whl/*.whl >>"$LOG" 2>&1
        export PYTHONPATH="/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>"$LOG" 2>&1
fi

step tests 100 "$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/test_precision.py tests/test_runtime.py \
    tests/test_tensorrt.py tests/test_train.py -k "cuda or tensorrt or compiled" --junitxml="$PARTS/tests.xml"
if ((!DRY_RUN)); then
    "$PYTHON" - "$PARTS/tests.xml" "$PARTS/tests.json" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
cases = []
for case in ET.parse(sys.argv[1]).iter("testcase"):
    outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
    reason = next((child.get("message", "") for child in case if child.tag in ("failure", "error", "skipped")), "")
    cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome, "seconds": float(case.get("time", 0)), "reason": reason[:300]})
json.dump(cases, open(sys.argv[2], "w"), indent=1)
EOF
fi
step fps 60 "$PYTHON" bench/fps.py --backends torch,torch-graphs --sizes 128,256 --streams 1,8,32,64 \
    --frames 100 --warmup 10 --json "$PARTS/fps.json"
step profile 35 "$PYTHON" bench/profile_streams.py --size 256 --streams 8,32,64 --json "$PARTS/profile.json"
step profile_cudnn 40 "$PYTHON" bench/profile_streams.py --size 256 --streams 8,32 --cudnn-benchmark \
    --json "$PARTS/profile_cudnn.json"
step longrun 60 "$PYTHON" bench/longrun.py --device cuda --frames 5000 --json "$PARTS/longrun.json"
step gan 30 "$PYTHON" -m rt_dtgan train gan --run-dir "$PARTS/gan" --encoder rt_dtgan/assets/paper-128.safetensors --steps 100 --size 128 \
    --batch-size 8 --workers 12 --no-progress
if ((!DRY_RUN)) && [[ -f "$PARTS/gan/metrics.jsonl" ]]; then
    tail -n 1 "$PARTS/gan/metrics.jsonl" >"$PARTS/gan.json"
fi
step fps_geometry 40 "$PYTHON" bench/fps.py --checkpoint geometry --backends torch,torch-graphs --streams 1,8,32 \
    --frames 60 --warmup 10 --json "$PARTS/fps_geometry.json"
step fps_compile 80 "$PYTHON" bench/fps.py --backends torch-compile --sizes 256 --streams 1,8,32,64 \
    --frames 100 --warmup 10 --json "$PARTS/fps_compile.json"
((DRY_RUN)) || echo "results: $OUT/gpu_check.json, log: $LOG"
