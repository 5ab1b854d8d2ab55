"""Files that ship with swift-ext: ``templates/`` and ``plugins/``.

In a wheel they live in ``swift_ext/_data/<name>`` (hatch force-include); in a source checkout or an
editable install they are the repository's top-level folders. ``resource_dir("templates")`` finds either.
"""

from __future__ import annotations

from pathlib import Path

from .errors import SwiftExtError

_PKG = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise SwiftExtError(f"swift-ext's {name}/ folder is missing from this installation ({_PKG})")


def resource(name: str, *parts: str) -> Path:
    path = resource_dir(name).joinpath(*parts)
    if not path.exists():
        raise SwiftExtError(f"{path}: not found in swift-ext's {name}/")
    return path
