#!/usr/bin/env bash
# Install the pinned dependencies (requirements.lock) and ganops itself into an existing venv.
#
# Why uv: pip unpacks the 5.5 GB of torch's CUDA build one wheel at a time (~190 s on the
# 2-core reference machine, plus ~60 s of bytecode); uv resolves the same pins to the same
# set of packages and installs them in parallel (~30 s cold, bytecode included ~80 s).
# uv does not read pip's configuration, so the machine's extra indexes, find-links and
# constraints (a local wheel mirror, say) are handed to it, with pip's rule of taking the
# best match across all indexes. Without uv (no network for it), pip does the same install.
set -euo pipefail
venv=${1:?usage: install-deps.sh VENV}
uv_version=0.13.9
pip=("$venv/bin/pip" --quiet --disable-pip-version-check)

pip_setting() {  # a pip setting from its config files and PIP_* environment, words one per line
    local key=$1 env=$2
    { "$venv/bin/pip" config get "global.$key" 2>/dev/null || true; printf '%s\n' "${!env:-}"; } |
        tr ' ' '\n' | sed '/^$/d'
}

if "${pip[@]}" install "uv==$uv_version" 2>/dev/null; then
    args=()
    while read -r url; do args+=(--extra-index-url "$url"); done < <(pip_setting extra-index-url PIP_EXTRA_INDEX_URL)
    while read -r dir; do args+=(--find-links "$dir"); done < <(pip_setting find-links PIP_FIND_LINKS)
    while read -r file; do args+=(--constraint "$file"); done < <(pip_setting constraint PIP_CONSTRAINT)
    "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --index-strategy unsafe-best-match \
        --compile-bytecode "${args[@]}" -c requirements.lock -e ".[dev,dask]"
else
    echo "note: uv $uv_version could not be installed; installing with pip (a few minutes)" >&2
    "${pip[@]}" install --no-compile -c requirements.lock -e ".[dev,dask]"
    # bytecode on both cores (pip writes it on one); some packages ship files that are not
    # Python 3, which compileall reports and pip also skips
    "$venv/bin/python" -m compileall -q -j 0 "$venv/lib" >/dev/null 2>&1 || true
fi
