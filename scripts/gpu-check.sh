#!/usr/bin/env bash
# The GPU check, in one call on a lent GPU machine (one H100 or H200, Python 3.12 and its own
# torch 2.11 for CUDA 13, numpy, pandas, pyyaml, safetensors, tqdm, scipy, scikit-learn; no
# network), from the repository root, within 8 minutes:
#   1. installs the wheels of .gpu-wheels (scripts/gpu-wheels.sh, run beforehand where there
#      is a network) into a temporary target, offline, beside the machine's own torch;
#   2. preflight (scripts/gpu_check.py): a line for each thing the project needs that this
#      torch or GPU lacks; no CUDA stops here, anything else is reported and fails the check
#      at the end, after the measurements the machine's minutes were lent for;
#   3. `pytest -m gpu` (tests/test_gpu.py), at most PYTEST_S seconds;
#   4. benchmarks/gpu.py --quick: every family with fp32, bf16, channels_last, compile and all
#      rows (img/s, ms/step, max memory, each switch's speed-up), rows that compile last,
#      none started after BENCH_BUDGET_S and none running past BENCH_S.
# With $OUT set (the device tool sets it), gpu.json, gpu.md, pytest-gpu.xml and a copy of
# this output (gpu-check.log) go there. With the device tool: command `scripts/gpu-check.sh`,
# carry [".gpu-wheels"], timeout_s 540.
#
# --cpu: the CPU fallback, the same steps here in seconds. The wheels are for Python 3.12 and
# this machine's venv is 3.11, so step 1 installs them offline for 3.12 into a scratch folder
# (to prove they resolve without a network, when .gpu-wheels exists), and the steps run in
# an empty venv holding only the distributions the GPU machine has or gets, linked from
# $PYTHON's environment (an import the lists miss fails here too); no CUDA: preflight checks
# only the torch names, the CUDA tests skip, the benchmark runs on the CPU without compile.
# Exit status: 0 when every step passed; 1 otherwise (each failure said in one line).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
wheels=${GPU_WHEELS:-.gpu-wheels}
PYTEST_S=${PYTEST_S:-170}
BENCH_S=${BENCH_S:-260}
BENCH_BUDGET_S=${BENCH_BUDGET_S:-190}
cpu=false
case "${1:-}" in
    --cpu) cpu=true ;;
    "") ;;
    *) echo "usage: scripts/gpu-check.sh [--cpu]" >&2 && exit 2 ;;
esac

out=${OUT:-}
tee_pid=
if [ -n "$out" ]; then
    mkdir -p "$out"
    exec > >(tee -a "$out/gpu-check.log") 2>&1
    tee_pid=$!
fi
say() { echo "gpu-check: $*"; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gan-gpu-check.XXXXXX")
finish() {
    rm -rf "$tmp"
    if [ -n "$tee_pid" ]; then # the log complete before whoever collects $OUT reads it
        exec >&- 2>&-
        wait "$tee_pid" 2>/dev/null || true
    fi
}
trap finish EXIT
unset DVC_ROOT # outside `dvc repro`: no dvclive view (gan/training/live.py), as the lists assume
ship=$("$PYTHON" scripts/gpu_check.py list ship)

# 1. the packages
"$PYTHON" -m pip --version >/dev/null 2>&1 || { say "$PYTHON has no pip: the wheels cannot be installed"; exit 1; }
install=("$PYTHON" -m pip install --quiet --isolated --disable-pip-version-check --no-index
    --find-links "$wheels" --no-compile)
if $cpu; then
    if [ -d "$wheels" ]; then
        # shellcheck disable=SC2046 # pip-target prints one option or value a line
        "${install[@]}" --only-binary=:all: $("$PYTHON" scripts/gpu_check.py pip-target) \
            --target "$tmp/wheel-check" $ship || { say "the wheels in $wheels do not install offline"; exit 1; }
        say "--cpu: the $(ls "$wheels"/*.whl | wc -l) wheels of $wheels install offline for the GPU machine's Python"
    else
        say "--cpu: no $wheels (scripts/gpu-wheels.sh makes it): its offline install not tried"
    fi
    "$PYTHON" -m venv --without-pip "$tmp/venv"
    site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    "$PYTHON" scripts/gpu_check.py isolate "$site"
    py=$tmp/venv/bin/python
    export PYTHONPATH=$PWD
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} # the CPU is shared; speed is not the point here
    device=cpu
else
    [ -d "$wheels" ] || { say "no $wheels: run scripts/gpu-wheels.sh where there is a network and carry $wheels"; exit 1; }
    # shellcheck disable=SC2086 # one word per package
    "${install[@]}" --target "$tmp/site" $ship || { say "the wheels in $wheels do not install on $("$PYTHON" -V 2>&1)"; exit 1; }
    py=$PYTHON
    export PYTHONPATH=$tmp/site:$PWD
    device=cuda
fi
say "installed in ${SECONDS}s: $(echo $ship)"

# 2. preflight
failed=()
preflight=("$py" scripts/gpu_check.py preflight)
$cpu && preflight+=(--cpu)
"${preflight[@]}" || failed+=("preflight: see the lines above")
if ! $cpu && ! "$py" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
    say "failed: no CUDA, nothing to measure"
    exit 1
fi

# 3. the CUDA tests (skipped without CUDA)
junit=()
[ -n "$out" ] && junit=(--junitxml "$out/pytest-gpu.xml")
timeout --kill-after 10 "$PYTEST_S" "$py" -m pytest -m gpu -q -p no:cacheprovider \
    ${junit[@]+"${junit[@]}"} tests/test_gpu.py || failed+=("pytest -m gpu: exit status $?")

# 4. the benchmark's quick mode
bench=("$py" benchmarks/gpu.py --quick --device "$device" --budget-s "$BENCH_BUDGET_S")
[ -n "$out" ] && bench+=(--out-dir "$out")
timeout --kill-after 10 "$BENCH_S" "${bench[@]}" || failed+=("benchmarks/gpu.py --quick: exit status $?")

for line in ${failed[@]+"${failed[@]}"}; do
    say "failed: $line"
done
say "done in ${SECONDS}s${out:+, tables in $out}"
[ ${#failed[@]} -eq 0 ]
