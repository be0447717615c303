#!/usr/bin/env bash
# The GPU check of the speed issue as one script (about 8 minutes on one H200, compiles included):
# the CUDA tests, then the paper update in bf16-mixed, eager against compiled and against
# compiled with CUDA graphs, each with its kernel launches and device syncs per update.
#
#   make gpu-wheels                  # on a machine with PyPI: wheels of our pure-Python
#                                    # dependencies into gpu-wheels/ (ignored by git)
#   bash experiments/gpu_check.sh    # on the GPU machine, from the repository root
#
# A GPU image that already has torch and Lightning gets the rest from gpu-wheels/ without
# network access. Logs go to $OUT (default gpu-out/); the last lines of each are printed.
set -u
OUT=${OUT:-gpu-out}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYGLET_HEADLESS=1

step() {  # step NAME SECONDS CMD...: run CMD under a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - start)) s"
    tail -n 4 "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
if [ -f gpu-wheels/requirements.txt ]; then  # only what the image lacks (Makefile's GPU_DEPS); then this checkout, without its deps
    step install 120 sh -c "\"$PY\" -m pip install --no-index --find-links gpu-wheels -r gpu-wheels/requirements.txt &&
        \"$PY\" -m pip install --no-index --no-deps --no-build-isolation -e ."
fi
"$PY" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" \
    | tee -a "$OUT/gpu.txt"

step cuda_tests 150 "$PY" -m pytest -q -p no:warnings tests/director/test_cuda.py
for mode in eager default reduce-overhead; do
    args=(--preset paper --device cuda --precision bf16 --time 20 --rows 10)
    [ "$mode" = eager ] || args+=(--compile "$mode")
    limit=140; [ "$mode" = eager ] && limit=45
    step "paper_bf16_$mode" "$limit" "$PY" experiments/profile_update.py "${args[@]}"
done
grep -h "^profile_update:" "$OUT"/paper_bf16_*.log
