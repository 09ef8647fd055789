"""The package that ``pip install .`` builds holds every module: a folder without ``__init__.py`` works
in a checkout or an editable install (as a namespace package) but is left out of a wheel."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


def test_every_folder_of_modules_is_a_package_the_wheel_includes():
    found = set(find_packages(str(ROOT), include=["wascompress*"]))
    folders = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "wascompress").rglob("*.py")
    }
    assert folders - found == set()
