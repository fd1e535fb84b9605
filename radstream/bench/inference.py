"""Inference throughput and latency: onnxruntime in-process versus a real local Triton.

The Triton rows are the sandbox's Triton: the python backend running the model with onnxruntime (the
nvidia-pytriton wheel has no onnxruntime backend). The EKS image runs the same model configuration
on Triton's onnxruntime backend; `serving` puts the two configurations side by side, saying which is
which, so the numbers are read for what they are.

Every mode runs in the same process on the same machine in one go, so the ratios compare like with
like. A Triton request carries one image (what the pipeline sends per study). The onnxruntime
baseline at concurrency c runs batches of c images in one session using all cores: the ideal that
Triton's dynamic batcher tries to reach, without any network or serialisation.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from radstream.inference.model import IMAGE_SIZE, MODEL_NAME

CONCURRENCIES = (1, 4, 8)
PROTOCOLS = ("http", "grpc")


def _measure(workers: int, work: Callable[[int], Callable[[], int]], seconds: float) -> dict[str, Any]:
    """Run `workers` threads, each calling its own work function until time is up.

    work(i) returns the thread's callable, which processes some images and returns how many."""
    import numpy as np

    calls = [work(i) for i in range(workers)]
    latencies: list[list[float]] = [[] for _ in range(workers)]
    images = [0] * workers
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers + 1)
    go = threading.Event()
    stop_at = [0.0]

    def run(i: int) -> None:
        try:
            calls[i]()  # warm-up in the worker's own thread: the HTTP client is bound to its thread
        except BaseException as exc:
            errors.append(exc)
        barrier.wait()
        go.wait()
        while not errors and time.perf_counter() < stop_at[0]:
            start = time.perf_counter()
            try:
                images[i] += calls[i]()
            except BaseException as exc:
                errors.append(exc)
            latencies[i].append(time.perf_counter() - start)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    barrier.wait()  # everyone warmed up
    began = time.perf_counter()
    stop_at[0] = began + seconds
    go.set()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    elapsed = time.perf_counter() - began
    flat = np.array([x for per in latencies for x in per]) * 1000.0
    return {
        "images": sum(images),
        "throughput": round(sum(images) / elapsed, 1),
        "p50_ms": round(float(np.percentile(flat, 50)), 2),
        "p95_ms": round(float(np.percentile(flat, 95)), 2),
    }


def _image(seed: int = 0) -> Any:
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, (1, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)


def _direct_rows(onnx_path: Path, seconds: float, concurrencies: tuple[int, ...]) -> list[dict[str, Any]]:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rows = []
    for c in concurrencies:
        batch = np.repeat(_image(), c, axis=0)

        # The default binds this concurrency's batch; a def, as mypy cannot type a lambda's default.
        def work(_i: int, batch: Any = batch) -> Callable[[], int]:
            return lambda: len(session.run(None, {name: batch})[0])
        stats = _measure(1, work, seconds)
        rows.append({"mode": "onnxruntime", "protocol": "in-process", "dynamic_batching": None, "concurrency": c, **stats})
    return rows


def _triton_rows(repo_dir: Path, work_dir: Path, dynamic_batching: bool, seconds: float, concurrencies: tuple[int, ...]) -> list[dict[str, Any]]:
    from radstream.inference.client import TritonClient
    from radstream.inference.triton_local import LocalTriton

    rows = []
    with LocalTriton(repo_dir, work_dir, dynamic_batching=dynamic_batching) as server:
        for protocol in PROTOCOLS:
            url = server.endpoints["triton_http" if protocol == "http" else "triton_grpc"]
            for c in concurrencies:
                clients = [TritonClient(url, protocol) for _ in range(c)]

                def work(i: int, clients: list[TritonClient] = clients) -> Callable[[], int]:
                    image = _image(i)
                    return lambda: len(clients[i].infer(image))

                try:
                    stats = _measure(c, work, seconds)
                finally:
                    for client in clients:
                        client.close()
                rows.append({"mode": "triton", "protocol": protocol, "dynamic_batching": dynamic_batching, "concurrency": c, **stats})
    return rows


def _configuration(config: Any) -> dict[str, Any]:
    parameters = {k: v.string_value for k, v in config.parameters.items()}
    batching = config.dynamic_batching if config.HasField("dynamic_batching") else None
    return {
        "backend": config.backend or None,
        "platform": config.platform or None,
        "max_batch_size": config.max_batch_size,
        "instance_groups": [{"count": g.count, "kind": _kind_name(g.kind)} for g in config.instance_group],
        "dynamic_batching": None if batching is None else {
            "preferred_batch_size": list(batching.preferred_batch_size),
            "max_queue_delay_microseconds": batching.max_queue_delay_microseconds},
        "intra_op_thread_count": parameters.get("intra_op_thread_count"),
    }


def _kind_name(kind: int) -> str:
    from tritonclient.grpc import model_config_pb2 as mc

    return str(mc.ModelInstanceGroup.Kind.Name(kind))


def serving_configurations(repo_dir: Path, model: str = MODEL_NAME) -> dict[str, Any]:
    """The model configuration the EKS image serves and the one the sandbox's Triton serves."""
    from radstream.inference.repository import read_config
    from radstream.inference.triton_local import wrapper_config

    return {
        "eks_image": {"runs": "Triton's onnxruntime backend (ONNX Runtime's C++ sessions, one per instance)",
                      **_configuration(read_config(Path(repo_dir) / model))},
        "sandbox": {"runs": "Triton's python backend running model.py: an onnxruntime InferenceSession per "
                            "instance (intra-op threads from intra_op_thread_count, inter-op 1); the Triton rows",
                    **_configuration(wrapper_config(read_config(Path(repo_dir) / model)))},
    }


def run(repo_dir: Path, seconds: float = 3.0, concurrencies: tuple[int, ...] = CONCURRENCIES, model: str = MODEL_NAME) -> dict[str, Any]:
    """Benchmark every mode; each Triton row carries its ratio to onnxruntime at the same concurrency."""
    from radstream.inference.repository import latest_model

    onnx_path = latest_model(Path(repo_dir) / model)
    rows = _direct_rows(onnx_path, seconds, concurrencies)
    with tempfile.TemporaryDirectory(prefix="radstream-bench-") as tmp:
        for dynamic in (True, False):
            rows += _triton_rows(Path(repo_dir), Path(tmp) / f"triton-{'dyn' if dynamic else 'nodyn'}", dynamic, seconds, concurrencies)

    direct = {r["concurrency"]: r["throughput"] for r in rows if r["mode"] == "onnxruntime"}
    for row in rows:
        row["ratio"] = round(row["throughput"] / direct[row["concurrency"]], 3) if direct[row["concurrency"]] else None
    best_direct = max(direct.values())
    best = max((r for r in rows if r["mode"] == "triton"), key=lambda r: r["throughput"])
    return {
        "model": model,
        "model_path": str(onnx_path),
        "serving": serving_configurations(Path(repo_dir), model),
        "cores": os.cpu_count(),
        "seconds_per_row": seconds,
        "rows": rows,
        "best": {
            "onnxruntime_throughput": best_direct,
            "triton_throughput": best["throughput"],
            "triton_mode": f"{best['protocol']}, concurrency {best['concurrency']}, dynamic batching {'on' if best['dynamic_batching'] else 'off'}",
            "ratio": round(best["throughput"] / best_direct, 3) if best_direct else None,
        },
    }


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of the rows and the headline ratio."""
    from radstream.bench.text import cell, table

    def on_off(on: bool | None) -> str:
        return "-" if on is None else ("on" if on else "off")

    lines = table([("mode", 12), ("protocol", 11), ("dyn.batch", 11), ("conc.", 6), ("img/s", 9), ("p50 ms", 9),
                   ("p95 ms", 9), ("ratio", 8)],
                  ([r["mode"], r["protocol"], on_off(r["dynamic_batching"]), r["concurrency"], r["throughput"],
                    cell(r["p50_ms"], 2), cell(r["p95_ms"], 2), cell(r["ratio"], 2)] for r in result["rows"]))
    for where, served in result["serving"].items():
        batching = served["dynamic_batching"]
        lines.append(f"\n{where}: {served['runs']}\n  {served['backend'] or served['platform']}, max batch "
                     f"{served['max_batch_size']}, instances {served['instance_groups']}, "
                     + (f"dynamic batching {batching['preferred_batch_size']} within {batching['max_queue_delay_microseconds']} us"
                        if batching else "no dynamic batching")
                     + f", intra-op threads {served['intra_op_thread_count']}")
    best = result["best"]
    lines.append(
        f"\nbest Triton ({best['triton_mode']}): {best['triton_throughput']} img/s = "
        f"{best['ratio']} x best onnxruntime ({best['onnxruntime_throughput']} img/s) on {result['cores']} cores"
    )
    return "\n".join(lines)
