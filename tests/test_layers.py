"""The package's layers: each part of rt_dtgan imports only the parts below it (so no import
circle), and bench/ and tools/ use the library, never the command layer."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Bottom first; a part may import any part on an earlier line (docs/architecture.md).
LAYERS = (
    ("__init__", "errors", "quiet", "lazy", "endpoints"),
    ("config", "optional"),
    ("models", "synth", "media"),
    ("runtime", "face"),
    ("prepare", "transport", "pipeline"),
    ("train", "web"),
    ("commands",),
    ("cli",),
    ("__main__",),
)


def part_of(module: str) -> str:
    """'rt_dtgan.media.sink' -> 'media'; 'rt_dtgan' -> '__init__'."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "__init__"


def imported_modules(path: Path) -> set[str]:
    """Every rt_dtgan module that ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "rt_dtgan" or name.startswith("rt_dtgan.")}


def test_every_part_imports_only_the_layers_below_it():
    level = {part: index for index, parts in enumerate(LAYERS) for part in parts}
    upward = []
    for path in (ROOT / "rt_dtgan").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        part = part_of(module)
        assert part in level, f"{part} (rt_dtgan/{part}) is in no layer of LAYERS"
        for imported in imported_modules(path):
            other = part_of(imported)
            if other != part and level[other] >= level[part]:
                upward.append(f"{module} imports {imported}")
    assert not upward, "imports at or above their own layer:\n" + "\n".join(sorted(upward))


def test_bench_and_tools_use_the_library_not_the_commands():
    offending = [
        f"{path.relative_to(ROOT)} imports {name}"
        for folder in ("bench", "tools")
        for path in (ROOT / folder).glob("*.py")
        for name in imported_modules(path)
        if part_of(name) in ("commands", "cli")
    ]
    assert not offending, "\n".join(offending)
