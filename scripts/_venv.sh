# Shared by scripts/*: create ./.venv and install framekit with the given extras ("" for
# the package alone), skipping the install when pyproject.toml has not changed since the
# last one. An install with extras also covers every smaller one ("dev" covers "").
ensure_venv() {
    local extras="$1"
    local py="${PYTHON:-}"
    if [ -z "$py" ]; then
        for candidate in python3.13 python3.12 python3.11 python3; do
            if command -v "$candidate" >/dev/null 2>&1 &&
                "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
                py="$candidate"; break
            fi
        done
    fi
    [ -n "$py" ] || { echo "framekit needs Python >= 3.11 on PATH (or set PYTHON=...)" >&2; exit 1; }
    local want stamp
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    for stamp in ".venv/.installed-${extras:-base}" .venv/.installed-dev; do
        if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
            return 0
        fi
    done
    echo "installing framekit${extras:+ with its $extras tools} into .venv..." >&2
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    local target="."
    [ -n "$extras" ] && target=".[$extras]"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
    echo "$want" > ".venv/.installed-${extras:-base}"
}
