"""Work moto repeats on every request that no AWS service would do, done once instead.

Measured with py-spy on a sandbox running a 50-study burst, these were the emulator's own costs
beside the pipeline's: every HTTP request lists moto's package folder to route itself; every Step
Functions Lambda task builds a new boto3 client (a TLS context, the credential chain, the service
model) and opens a new connection; every JSONPath an execution evaluates builds jsonpath_ng's yacc
parser anew. None changes what an answer is, only how long it takes; `install()` applies them once,
in the daemon's process."""

from __future__ import annotations

import functools
import importlib
import threading
from typing import Any

# Where the pipeline's Lambda tasks get their client (by the name that module imported).
_LAMBDA_TASKS = "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"
_JSON_PATH_USERS = (
    "moto.stepfunctions.parser.asl.utils.json_path",
    "moto.stepfunctions.parser.asl.component.common.path.result_path",
)
# Concurrent executions share a task client; its pool must not discard their connections.
_TASK_CLIENT_POOL = 64


def shared_task_clients(create: Any) -> Any:
    """moto's boto_client_for, returning one client per (region, service, credentials) for all
    executions. boto3 clients are safe to share between threads once made; making one is not, hence
    the lock."""
    clients: dict[tuple[str, str, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, repr(state_credentials))
        with lock:
            if key not in clients:
                clients[key] = create(region=region, service=service, state_credentials=state_credentials)
            return clients[key]

    return boto_client_for


class _PooledBoto3:
    """Stands in for the `boto3` module where moto makes task clients: the same clients, with a
    connection pool as large as the executions that share one."""

    @staticmethod
    def client(*args: Any, **kwargs: Any) -> Any:
        import boto3
        from botocore.config import Config

        pool = Config(max_pool_connections=_TASK_CLIENT_POOL)
        kwargs["config"] = kwargs["config"].merge(pool) if kwargs.get("config") else pool
        return boto3.client(*args, **kwargs)


def memoised(parse: Any) -> Any:
    """jsonpath_ng's parse, once per expression: a parsed path is only read when matched."""
    return functools.lru_cache(maxsize=1024)(parse)


def _routed_once(list_of_moto_modules: Any) -> Any:
    # The installed packages do not change while the server runs.
    modules = tuple(list_of_moto_modules())
    return lambda: modules


def install() -> None:
    from moto import backends
    from moto.stepfunctions.parser.asl.utils import boto_client

    if getattr(backends.list_of_moto_modules, "radstream_once", False):
        return
    routed = _routed_once(backends.list_of_moto_modules)
    routed.radstream_once = True
    backends.list_of_moto_modules = routed
    boto_client.boto3 = _PooledBoto3
    importlib.import_module(_LAMBDA_TASKS).boto_client_for = shared_task_clients(boto_client.boto_client_for)  # type: ignore[attr-defined]
    for name in _JSON_PATH_USERS:
        module = importlib.import_module(name)
        module.parse = memoised(module.parse)  # type: ignore[attr-defined]
