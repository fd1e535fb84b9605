"""PrepareImage's fast path against the plain one, input by input, measured side by side.

The fast path decodes a JPEG at a reduced scale (in the DCT domain, never below the model's input
size) and box-reduces before the Lanczos resize; the plain path decodes every pixel and resizes in
one Lanczos pass. Both run on the same bytes in the same process, alternating, so the speedup is a
ratio of one run, and their tensors are compared against the tolerance the pipeline promises
(radstream.pipeline.preprocess.FAST_PATH_TOLERANCE)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_SIZE = 2048


@dataclass(frozen=True)
class BenchInput:
    name: str
    description: str
    data: bytes


def inputs(size: int = DEFAULT_SIZE) -> list[BenchInput]:
    """The real radiograph, then generated `size`² JPEG, 16-bit PNG and DICOM inputs."""
    from radstream.studies import chest_pixels, encode, grey_dicom, real_radiograph

    real = real_radiograph()
    return [
        BenchInput("real-radiograph", real.description, real.objects[-1][1]),
        BenchInput("jpeg", f"JPEG {size}x{size}, quality 90", encode(chest_pixels(size, size, seed=1), "JPEG", quality=90)),
        BenchInput("png16", f"16-bit PNG {size}x{size}", encode(chest_pixels(size, size, seed=2, bits=16), "PNG")),
        BenchInput("dicom", f"DICOM DX {size}x{size}, 12 bits stored", grey_dicom(size, seed=3)),
    ]


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def compare(item: BenchInput, repeat: int) -> dict[str, Any]:
    """ms per image on each path (median of `repeat`, alternating), the speedup and the difference."""
    import numpy as np

    from radstream.pipeline.preprocess import FAST_PATH_TOLERANCE, prepare

    fast_ms, plain_ms = [], []
    fast = plain = None
    for _ in range(repeat):
        elapsed, fast = _timed(lambda: prepare(item.data))
        fast_ms.append(elapsed)
        elapsed, plain = _timed(lambda: prepare(item.data, fast=False))
        plain_ms.append(elapsed)
    assert fast is not None and plain is not None
    difference = np.abs(fast.tensor.astype(np.int16) - plain.tensor.astype(np.int16))
    fast_p50, plain_p50 = statistics.median(fast_ms), statistics.median(plain_ms)
    return {
        "input": item.name,
        "description": item.description,
        "bytes": len(item.data),
        "width": fast.decoded.original_size[0],
        "height": fast.decoded.original_size[1],
        "fast_ms": round(fast_p50, 2),
        "plain_ms": round(plain_p50, 2),
        "speedup": round(plain_p50 / fast_p50, 3) if fast_p50 else None,
        "mean_abs_difference": round(float(difference.mean()), 4),
        "max_abs_difference": int(difference.max()),
        "tolerance": FAST_PATH_TOLERANCE,
        "within_tolerance": bool(difference.mean() <= FAST_PATH_TOLERANCE),
    }


def run(size: int = DEFAULT_SIZE, repeat: int = 5) -> dict[str, Any]:
    import os

    rows = [compare(item, repeat) for item in inputs(size)]
    return {"size": size, "repeat": repeat, "cores": os.cpu_count(), "inputs": rows,
            "all_within_tolerance": all(r["within_tolerance"] for r in rows)}


def format_table(result: dict[str, Any]) -> str:
    from radstream.bench.text import cell, table

    lines = table([("input", 17), ("fast ms", 9), ("plain ms", 10), ("speedup", 9), ("mean |d|", 10), ("max |d|", 9),
                   ("within", 8)],
                  ([r["input"], r["fast_ms"], r["plain_ms"], f"{cell(r['speedup'], 2)}x", cell(r["mean_abs_difference"], 3),
                    r["max_abs_difference"], "yes" if r["within_tolerance"] else "NO"] for r in result["inputs"]))
    lines.append(f"\nmedian of {result['repeat']} per path, alternating; tolerance: mean |difference| <= "
                 f"{result['inputs'][0]['tolerance']} grey levels of the 224x224 tensor")
    return "\n".join(lines)
