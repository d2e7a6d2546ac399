# Shared by scripts/*: create ./.venv and install framekit with the given extras,
# skipping the install when pyproject.toml has not changed since the last one.
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
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    local stamp=".venv/.installed-$extras"
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -e ".[$extras]"
        echo "$want" > "$stamp"
    fi
}
