"""The embedded AWS: moto in server mode on a loopback port, with the gaps moto leaves filled —
Lambda runs the uploaded code, EventBridge delivers to Step Functions (and what it cannot deliver to
dead-letter queues), SQS records reach mapped functions with their attributes, and Firehose streams
with a Kinesis source deliver to S3."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

    from radstream.sandbox.alarm_evaluator import AlarmEvaluator
    from radstream.sandbox.firehose_pump import FirehosePump
    from radstream.sandbox.lambda_runner import LambdaRunner

log = logging.getLogger(__name__)

# Must be set before anything is created: switching later hides what already exists.
# Lambda's use_docker stays untouched on purpose: setting it false routes invocations to moto's
# echo backend, which never reaches the runner hook.
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}}


def configure_moto(endpoint: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/config",
        data=json.dumps(MOTO_CONFIG).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status >= 300:
            raise RuntimeError(f"moto refused its configuration (HTTP {response.status})")


class EmbeddedAws:
    name = "aws"

    def __init__(self, cache_dir: Path, log_dir: Path, region: str) -> None:
        self.cache_dir = cache_dir
        self.log_dir = log_dir
        self.region = region
        self.logs = {"lambda": str(log_dir / "lambda")}
        self._server: ThreadedMotoServer | None = None
        self._runner: LambdaRunner | None = None
        self._pump: FirehosePump | None = None
        self._alarms: AlarmEvaluator | None = None

    def start(self) -> dict[str, str]:
        from moto.server import ThreadedMotoServer

        from radstream.sandbox import emulation_speed, eventbridge, lambda_runner, moto_fixes, sqs_event_source
        from radstream.sandbox.alarm_evaluator import AlarmEvaluator
        from radstream.sandbox.firehose_pump import FirehosePump

        moto_fixes.install()
        emulation_speed.install()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        _, port = self._server.get_host_and_port()
        endpoint = f"http://127.0.0.1:{port}"
        # moto's Step Functions builds its Lambda client from MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        configure_moto(endpoint)
        self._runner = lambda_runner.install(
            endpoint_url=endpoint, cache_dir=self.cache_dir / "lambda", log_dir=self.log_dir / "lambda"
        )
        eventbridge.install()
        sqs_event_source.install()
        self._pump = FirehosePump(endpoint_url=endpoint, regions=(self.region,))
        self._pump.start()
        self._alarms = AlarmEvaluator()
        self._alarms.start()
        log.info("moto serving on %s", endpoint)
        return {"aws_endpoint": endpoint}

    def stop(self) -> None:
        if self._alarms is not None:
            self._alarms.stop()
        if self._pump is not None:
            self._pump.stop()
        if self._runner is not None:
            self._runner.close()
        if self._server is not None:
            self._server.stop()
