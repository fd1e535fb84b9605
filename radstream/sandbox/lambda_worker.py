"""The Lambda worker: one execution environment of one function version, run by lambda_runner as
`python -I <this file> <handler> <json list of sys.path entries>`.

It imports the handler once, says {"ready"} (or {"init_error"}) on its protocol line, then answers
one JSON line per invocation read from stdin: {"payload"} or {"error"} as Lambda reports them, with
"logs", what the handler printed. It imports nothing from radstream, and runs isolated and by path,
not with -m, so that a `radstream` package shipped inside the zip wins over the repository's."""

import importlib
import json
import logging
import os
import sys
import time
import traceback


class Capture:
    """Collects what the handler prints for the invocation's log tail; also copies it to stderr."""

    def __init__(self, sink):
        self.sink, self.parts = sink, []

    def write(self, text):
        self.parts.append(text)
        self.sink.write(text)
        return len(text)

    def flush(self):
        self.sink.flush()

    def isatty(self):
        return False

    def take(self):
        text, self.parts = "".join(self.parts), []
        return text


class Context:
    """The handler's context: the invocation's fields and the time it has left."""

    def __init__(self, info, deadline):
        self.__dict__.update(info)
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def error_of(exc, tb=True):
    stack = traceback.format_tb(exc.__traceback__) if tb else []
    return {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": stack}


def main():
    # Before 3.11 `-I` still puts the script's directory first on sys.path: radstream/sandbox's
    # modules must not shadow the function's.
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    handler, extra_paths = sys.argv[1], json.loads(sys.argv[2])
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray C-level output must not corrupt the protocol
    sys.path[:0] = extra_paths
    capture = Capture(sys.__stderr__)
    sys.stdout = sys.stderr = capture
    root = logging.getLogger()
    handler_ = logging.StreamHandler(capture)
    handler_.setFormatter(logging.Formatter("[%(levelname)s]\t%(asctime)s\t%(message)s"))
    root.addHandler(handler_)

    def send(message):
        protocol.write(json.dumps(message) + "\n")

    module_name, _, func_name = handler.rpartition(".")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as exc:
        err = error_of(exc)
        err.update(errorType="Runtime.ImportModuleError",
                   errorMessage=f"Unable to import module '{module_name}': {exc}")
        send({"init_error": err, "logs": capture.take()})
        return
    func = getattr(module, func_name, None)
    if func is None:
        send({"init_error": {"errorType": "Runtime.HandlerNotFound",
                             "errorMessage": f"Handler '{func_name}' missing on module '{module_name}'",
                             "stackTrace": []}, "logs": capture.take()})
        return
    send({"ready": True, "logs": capture.take()})
    for line in sys.stdin:
        request = json.loads(line)
        context = Context(request["context"], time.monotonic() + request["timeout"])
        try:
            result = func(request["event"], context)
            try:
                reply = {"payload": json.dumps(result)}
            except (TypeError, ValueError) as exc:
                reply = {"error": {"errorType": "Runtime.MarshalError",
                                   "errorMessage": f"Unable to marshal response: {exc}",
                                   "stackTrace": []}}
        except Exception as exc:
            reply = {"error": error_of(exc)}
        reply["logs"] = capture.take()
        send(reply)


if __name__ == "__main__":
    main()
