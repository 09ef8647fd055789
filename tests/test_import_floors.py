"""No module imports from a higher floor: the package is layered, and export, evaluate and profile never
reach up into train (or the CLI). A floor is the first path part below ``wascompress``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "wascompress"
FLOORS = {
    "errors": 0, "fileio": 0, "device": 0, "plotting": 0, "onnx_session": 0,
    "was": 1, "models": 1, "data": 1,
    "checkpoint": 2, "weights": 2, "evaluate": 2, "robustness": 2,
    "export": 3, "profile": 3, "fit": 3, "plan": 4,
    "train": 4,
    "pipeline": 5,
    "cli": 6, "__main__": 6, "__init__": 6,  # the package's root only lazily offers compress() from pipeline
}


def floor_of(module: str) -> int:
    part = module.split(".")[1] if module.count(".") else "__init__"
    return FLOORS[part]


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):  # lazy imports inside functions count too
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wascompress"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("wascompress")]
    return found


def test_every_module_imports_only_from_its_floor_or_below():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("wascompress", *path.relative_to(PACKAGE).with_suffix("").parts))
        own = floor_of(module)
        for target in imports(path):
            if target != "wascompress" and floor_of(target) > own:
                upward.append(f"{module} (floor {own}) imports {target} (floor {floor_of(target)})")
    assert not upward, "\n".join(upward)


def test_every_part_of_the_package_has_a_floor():
    parts = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.iterdir()
             if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    assert parts <= FLOORS.keys(), parts - FLOORS.keys()
