"""The layers are folders, and each imports only the layers below it (read from the code)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import framekit

PACKAGE = Path(framekit.__file__).parent

#: Each layer, and the framekit layers it may import. Top-level private modules
#: (_errors, _types, _version) are the floor everyone may use.
ALLOWED: dict[str, set[str]] = {
    "codec": set(),
    "streams": {"codec"},
    "remote": {"codec", "streams"},
    "datagram": {"codec", "streams"},
    "compare": {"codec", "streams"},
    "_serve": {"codec", "streams", "remote", "datagram", "compare"},
}
FLOOR = {"_errors", "_types", "_version"}


def _layer(module: Path) -> str:
    relative = module.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _framekit_imports(module: Path) -> set[str]:
    """The framekit layers ``module`` imports (absolute or relative), at any depth."""
    tree = ast.parse(module.read_text())
    package = ("framekit", *module.relative_to(PACKAGE).parent.parts)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
            else:
                target = (node.module or "").split(".")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("framekit."):
                    found.add(alias.name.split(".")[1])
            continue
        else:
            continue
        if target[0] == "framekit" and len(target) > 1:
            found.add(target[1])
        elif target == ["framekit"] and isinstance(node, ast.ImportFrom):
            found.update(alias.name for alias in node.names)
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _layer(p) in ALLOWED)


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_lower_layers(module: Path) -> None:
    layer = _layer(module)
    imported = _framekit_imports(module) - FLOOR - {layer}
    assert imported <= ALLOWED[layer], f"{layer} imports {sorted(imported - ALLOWED[layer])}"


def test_the_floor_imports_nothing_of_framekit() -> None:
    for name in FLOOR:
        assert _framekit_imports(PACKAGE / f"{name}.py") <= FLOOR


def test_the_cli_uses_public_names_only() -> None:
    cli = Path(__file__).resolve().parents[1] / "cli" / "framekit_cli"
    for module in cli.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                assert not node.module.startswith("framekit."), (module.name, node.module)
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "framekit"
            ):
                assert not node.attr.startswith("_") or node.attr == "__version__", (
                    module.name,
                    node.attr,
                )


def test_importing_the_codec_loads_neither_trio_nor_the_servers() -> None:
    probe = (
        "import sys, framekit; framekit.FrameDecoder().receive_data(b'');"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('trio', 'subprocess', 'ssl') or m.startswith(('framekit.streams', 'framekit.remote')));"
        "print(loaded)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_is_exported_by_its_layer_and_the_package() -> None:
    from framekit import _LAZY

    layers = ["codec", "streams", "remote", "datagram", "compare"]
    by_layer = {name: __import__(f"framekit.{name}").__dict__[name].__all__ for name in layers}
    for name, module in _LAZY.items():
        assert getattr(framekit, name) is not None
        layer = module.lstrip(".")
        if layer in by_layer:
            assert name in by_layer[layer], f"{name} missing from framekit.{layer}.__all__"
    exported = {n for names in by_layer.values() for n in names}
    assert exported <= set(framekit.__all__), sorted(exported - set(framekit.__all__))
    # the TYPE_CHECKING block (what type checkers and the docs see) names the same things
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    checked = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        for sub in node.body
        if isinstance(sub, ast.ImportFrom)
        for alias in sub.names
    }
    assert checked == set(_LAZY)
