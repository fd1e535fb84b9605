"""One `doctor` check as data, and the check for an importable Python module."""

from __future__ import annotations

import importlib.util
from typing import Any

PIP_FIX = "pip install -e '.[sandbox]' (or run ./dev demo, which sets everything up)"


def check(name: str, ok: bool, detail: str, fix: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, "fix": fix, "required": required}


def module_check(name: str, required: bool = True, fix: str = PIP_FIX) -> dict[str, Any]:
    found = importlib.util.find_spec(name) is not None
    return check(f"python module {name}", found, "importable" if found else "not installed", fix, required)
