#!/usr/bin/env bash
# Put into .gpu-wheels (git-ignored) the wheels a lent GPU machine needs for scripts/gpu-check.sh:
# the `ship` list of scripts/gpu-packages.txt at requirements.lock's versions, built for the
# machine's Python and platforms as that file names them (3.12, manylinux x86_64), without
# their dependencies (the list names them all; an offline install fails if one is missing,
# and `scripts/gpu-check.sh --cpu` tries that install here).
#
# Run it here, where there is a network (PyPI), with the project's venv or any pip:
#     scripts/gpu-wheels.sh            (or: make gpu-wheels)
# then on the GPU machine, from the repository root, with the folder carried along
# (the device tool: carry [".gpu-wheels"]; at most 64 MiB travel with the working tree):
#     scripts/gpu-check.sh
# The total must stay under MAX_MIB (the working tree's share of the 64 MiB is left to it).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${GPU_WHEELS:-.gpu-wheels}
max_mib=${MAX_MIB:-56}
pip=${PIP:-$([ -x .venv/bin/pip ] && echo .venv/bin/pip || echo "python3 -m pip")}

names=$(python3 scripts/gpu_check.py list ship)
target=$(python3 scripts/gpu_check.py pip-target)
pins=()
for name in $names; do
    # requirements.lock spells names its own way (PyYAML, typing_extensions): compare canonically
    pin=$(awk -F'==' -v want="$name" '{ n = tolower($1); gsub(/[-_.]+/, "-", n) }
                                    n == want { print $1 "==" $2 }' requirements.lock)
    [ -n "$pin" ] || { echo "gpu-wheels: $name is not pinned in requirements.lock" >&2; exit 1; }
    pins+=("$pin")
done

rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
# --python-version/--platform: pip picks the wheels of the GPU machine's Python, not this one's
$pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: $target \
    --dest "$dest.tmp" "${pins[@]}" 2> >(grep -v "is neither a file nor a directory" >&2)
rm -rf "$dest" && mv "$dest.tmp" "$dest"

ls -l "$dest" | awk 'NR > 1 { printf "%10d  %s\n", $5, $9 }'
bytes=$(du -cb "$dest"/*.whl | tail -1 | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
count=$(ls "$dest"/*.whl | wc -l)
if awk -v m="$mib" -v max="$max_mib" 'BEGIN { exit !(m > max) }'; then
    echo "gpu-wheels: $count wheels, $mib MiB in $dest: over the $max_mib MiB limit" >&2
    exit 1
fi
echo "gpu-wheels: $count wheels, $mib MiB in $dest (limit $max_mib MiB); carry it: [\"$dest\"]"
