"""What a local process tree really uses, from /proc: CPU in millicores since the last reading, and
resident memory. The sandbox's metrics-server reads the local Triton with it (tritonserver and its
Python-backend stubs, where the model runs)."""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ")".
    return text[text.rindex(")") + 2:].split()


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_usage(root: int) -> tuple[float, int] | None:
    """(CPU seconds used so far, resident bytes) of `root` and its descendants; None once it is gone.
    Reaped children's time is in the root's cutime/cstime."""
    fields = _stat(root)
    if fields is None:
        return None
    cpu, rss = 0.0, 0
    for pid in _tree(root):
        stat = _stat(pid)
        if stat is None:
            continue
        # utime, stime, cutime, cstime are fields 14-17 of stat (11-14 after the name); rss is 24.
        cpu += sum(int(v) for v in stat[11:15]) / _TICKS
        rss += int(stat[21]) * _PAGE
    return cpu, rss


class CpuMeter:
    """Millicores a process tree used between two readings."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        first = tree_usage(pid)
        self._last = (time.monotonic(), first[0] if first else 0.0)

    def read(self) -> tuple[float, int] | None:
        """(millicores since the previous reading, resident bytes); None once the process is gone."""
        usage = tree_usage(self.pid)
        if usage is None:
            return None
        now = time.monotonic()
        elapsed = max(now - self._last[0], 1e-3)
        millicores = max(usage[0] - self._last[1], 0.0) / elapsed * 1000
        self._last = (now, usage[0])
        return millicores, usage[1]
