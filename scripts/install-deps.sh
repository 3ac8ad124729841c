#!/usr/bin/env bash
# Install the pinned dependencies (requirements.lock) and ganops itself into an existing venv.
#
# Why uv: pip unpacks the 5.5 GB of torch's CUDA build one wheel at a time (~190 s on the
# 2-core machine, plus ~60 s of bytecode); uv resolves the same pins to the same set of
# packages and installs them in parallel (~30 s, bytecode included ~80 s, on an empty cache).
# uv does not read pip's configuration, so pip's settings for where packages come from
# (index, extra indexes, no-index, find-links, constraints: a local wheel mirror, say) are
# handed to it, with pip's rule of taking the best match across all indexes. If uv cannot
# be installed or fails, pip does the same install.
set -euo pipefail
venv=$(cd "${1:?usage: install-deps.sh VENV}" && pwd)
cd "$(dirname "$0")/.."
uv_version=0.13.9
pip=("$venv/bin/pip" --quiet --disable-pip-version-check)

# `pip config get` misses keys that `pip config list` shows (seen: global.constraint from
# /etc/xdg/pip/pip.conf), so the list is read once and searched
pip_config=$("$venv/bin/pip" config list 2>/dev/null || true)

pip_setting() {  # pip's value, one word per line: PIP_<KEY> if set, else [install], else [global]
    local key=$1 env=$2 value="" section line
    if [ -n "${!env:-}" ]; then
        value=${!env}
    else
        for section in install global; do
            line=$(grep -m1 "^${section}[.]${key}=" <<<"$pip_config" || true)
            if [ -n "$line" ]; then
                value=${line#*=}
                value=${value#\'}
                value=${value%\'}
                break
            fi
        done
    fi
    printf '%s\n' "$value" | tr -s '[:space:]' '\n' | sed '/^$/d'
}

uv_install() {
    local args=() flag key word
    for flag in index-url extra-index-url find-links constraint; do  # uv's flags are pip's keys
        key=$(tr 'a-z-' 'A-Z_' <<<"$flag")
        while read -r word; do args+=("--$flag" "$word"); done < <(pip_setting "$flag" "PIP_$key")
    done
    case "$(pip_setting no-index PIP_NO_INDEX)" in 1 | true | yes | on) args+=(--no-index) ;; esac
    "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --index-strategy unsafe-best-match \
        --compile-bytecode ${args[@]+"${args[@]}"} -c requirements.lock -e ".[dev,dask,onnx]"
}

if "${pip[@]}" install "uv==$uv_version" && uv_install; then
    exit 0
fi
echo "note: installing with pip instead of uv $uv_version (a few minutes)" >&2
"${pip[@]}" install --no-compile -c requirements.lock -e ".[dev,dask,onnx]"
# bytecode on both cores (pip writes it on one); some packages ship files that are not
# Python 3, which compileall reports and pip also skips
"$venv/bin/python" -m compileall -q -j 0 "$venv/lib" >/dev/null 2>&1 || true
