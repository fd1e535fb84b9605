"""What the sandbox's nodes pull and run: the serving image a Triton pod names, taken from the
sandbox's registry, decides the model the local Triton serves.

The sandbox has no container runtime, so one local Triton stands for every Triton pod. A pod's
image is pulled from the sandbox's registry (a reference it does not hold fails the pull as
containerd's does, and the kubelet backs off: ImagePullBackOff); the sandbox's nodes reach no other
registry for Triton pods. When a Triton pod starts, the model repository its image carries (the
layer phase 2 pushed, unpacked under /models) is loaded into the local Triton on a worker thread;
the most recently started running pod's image is the one served. A Triton pod is Ready only while
its own image's model is the one loaded and ready, so a rollout completes only once the new model
answers, and a rollout that cannot pull leaves the previous model serving."""

from __future__ import annotations

import io
import logging
import shutil
import tarfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from radstream.errors import RadstreamError
from radstream.inference.image import MODELS_DIR, platform_manifest
from radstream.inference.oci import RegistryClient, parse_reference

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
ModelLoader = Callable[[Path], None]  # serve the model repository at this path from now on


def pull_failure(image: str, registry: str | None) -> str | None:
    """Why a Triton pod's `image` cannot be pulled on the sandbox, in containerd's words; None when it can."""
    try:
        ref = parse_reference(image)
    except RadstreamError as error:
        return f'failed to pull and unpack image "{image}": {error.args[0]}'
    if registry is None or ref.registry != registry:
        # Without it the sandbox could not serve the pod's model: it holds only what phase 2 pushed.
        return (f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": the sandbox\'s '
                f"nodes pull serving images only from the sandbox's registry {registry}")
    client = RegistryClient(ref.registry)
    try:
        found = client.manifest_digest(ref.repository, ref.reference)
    except Exception as error:  # the registry is down: what a node sees as a failed dial
        return f'rpc error: code = Unavailable desc = failed to pull and unpack image "{image}": {error}'
    finally:
        client.close()
    if found is None:
        return (f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": {image}: not found')
    return None


def unpack_models(image: str, into: Path) -> Path:
    """The model repository the image carries at /models (from its newest layer that has one),
    unpacked into `into`; returns the repository's root."""
    ref = parse_reference(image)
    client = RegistryClient(ref.registry)
    try:
        manifest, _ = platform_manifest(client, ref)
        for layer in reversed(manifest.get("layers") or []):
            blob = client.get_blob(ref.repository, layer["digest"])
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
                members = [m for m in tar.getmembers() if m.name.startswith(f"{MODELS_DIR}/")]
                if not members:
                    continue
                for member in members:
                    _unpack(tar, member, into / member.name[len(MODELS_DIR) + 1:])
                return into
    finally:
        client.close()
    raise RadstreamError(f"{image} carries no model repository under /{MODELS_DIR}",
                         "build it with phase 2 (radstream phase run 2)")


def _unpack(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    """Files and directories only, never outside the repository: a model layer holds nothing else."""
    if ".." in Path(member.name).parts or member.name.startswith("/"):
        raise RadstreamError(f"the model layer's entry {member.name!r} leaves /{MODELS_DIR}")
    if member.isdir():
        path.mkdir(parents=True, exist_ok=True)
    elif member.isfile():
        path.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        assert source is not None
        path.write_bytes(source.read())


class ServedImage:
    """Which Triton pod image the local Triton serves. The kubelet hooks call `started`/`stopped`
    (quick: a worker thread pulls and loads), the readiness hook `serves`."""

    def __init__(self, load: ModelLoader, work_dir: Path) -> None:
        self.load, self.work_dir = load, Path(work_dir)
        self.loaded: str | None = None  # the image whose model the local Triton serves
        self._started: OrderedDict[str, str] = OrderedDict()  # pod uid -> image, in start order
        self._wanted: str | None = None
        self._changed = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sandbox-served-image", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def started(self, uid: str, image: str) -> None:
        with self._changed:
            self._started[uid] = image
            self._want()

    def stopped(self, uid: str) -> None:
        with self._changed:
            if self._started.pop(uid, None) is not None:
                self._want()

    def serves(self, image: str) -> bool:
        return self.loaded is not None and self.loaded == image

    def _want(self) -> None:
        # The newest running pod's image; with none left, whatever is loaded stays (nothing reaches it).
        wanted = next(reversed(self._started.values()), None)
        if wanted is not None and wanted != self._wanted:
            self._wanted = wanted
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stop and (self._wanted is None or self._wanted == self.loaded):
                    self._changed.wait()
                if self._stop:
                    return
                image = self._wanted
            assert image is not None
            try:
                self._serve(image)
            except Exception as error:
                log.warning("the local Triton keeps serving %s: it could not load the model of %s: %s",
                            self.loaded or "the model it started with", image, error)
                with self._changed:  # tried again in a while (the registry may be back), or for another image
                    if self._wanted == image and not self._stop:
                        self._changed.wait(timeout=RETRY_SECONDS)

    def _serve(self, image: str) -> None:
        into = self.work_dir / "pulled"
        shutil.rmtree(into, ignore_errors=True)
        into.mkdir(parents=True)
        self.load(unpack_models(image, into))
        self.loaded = image
        log.info("the local Triton serves the model of %s", image)
