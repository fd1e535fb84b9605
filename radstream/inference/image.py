"""The serving image: the stock Triton image plus the model repository as one extra layer.

The default builder needs no container engine: it writes the model repository as a deterministic
tar.gz layer, appends it to the base image's manifest and config, and pushes the result with the
OCI distribution API (radstream.inference.oci). The tag is derived from everything in the image, the
base image and the repository's content (serving_tag), so a second build of the same finds its tag
already in place and uploads nothing, and a change of either is a new tag. Each model's instances
run on the nodegroup's device: KIND_GPU in the image on a GPU instance type, whatever the repository says.
docker, buildah or podman build manifests/docker/Dockerfile.triton instead when configured and
installed; both paths produce the same filesystem, command and user."""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from radstream.errors import ConfigError, RadstreamError
from radstream.inference.oci import (
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_MANIFEST,
    Credentials,
    ImageRef,
    RegistryClient,
    copy_blob,
    parse_reference,
    select_platform,
    sha256_digest,
)
from radstream.inference.repository import CONFIG_FILE, for_device
from radstream.resources import manifest

MODELS_DIR = "models"  # the layer unpacks to /models, where Triton's --model-repository points
SERVE_CMD = ["tritonserver", f"--model-repository=/{MODELS_DIR}"]
# The NGC images' triton-server account. Numeric, so Kubernetes can enforce runAsNonRoot.
SERVE_USER = "1000:1000"
BUILDERS = ("daemonless", "docker", "buildah", "podman")
PLATFORM = "linux/amd64"  # what EKS's x86 nodegroups run
_EPOCH = "1970-01-01T00:00:00Z"
_LAYER_MEDIA_TYPE = {
    DOCKER_MANIFEST: "application/vnd.docker.image.rootfs.diff.tar.gzip",
    OCI_MANIFEST: "application/vnd.oci.image.layer.v1.tar+gzip",
}
_CONFIG_MEDIA_TYPE = {
    DOCKER_MANIFEST: "application/vnd.docker.container.image.v1+json",
    OCI_MANIFEST: "application/vnd.oci.image.config.v1+json",
}


@dataclass(frozen=True)
class Layer:
    tar: bytes  # the uncompressed tar

    @cached_property
    def diff_id(self) -> str:
        """sha256 of the uncompressed tar: how the image config names it."""
        return sha256_digest(self.tar)

    @cached_property
    def blob(self) -> bytes:
        """The gzip-compressed tar, as pushed; compressed only when needed, as every plan derives
        the tag from the tar alone and gzip is most of a layer's cost."""
        return gzip.compress(self.tar, compresslevel=6, mtime=0)

    @cached_property
    def digest(self) -> str:
        """sha256 of `blob`: how the manifest names the layer."""
        return sha256_digest(self.blob)


def serving_tag(base_image: str, layer: Layer) -> str:
    """The serving image's tag, from everything in it: the base image it names and the model layer
    (its uncompressed tar, so the tag survives a different zlib producing other bytes). Changing
    either makes a new tag, which phase 2 then builds and rolls out."""
    return "serving-" + hashlib.sha256(f"{base_image}\n{layer.diff_id}".encode()).hexdigest()[:12]


def _skipped(relative: Path) -> bool:
    # Editor droppings, caches and VCS files are not part of a model repository.
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def _served_bytes(path: Path, relative: Path, gpu: bool) -> bytes:
    """A repository file as the image carries it: a model's config.pbtxt on the nodegroup's device."""
    data = path.read_bytes()  # follows symlinks: the image gets the content
    if len(relative.parts) == 2 and relative.name == CONFIG_FILE:
        data = for_device(data.decode("utf-8"), gpu).encode()
    return data


def model_layer(model_repo_dir: Path, gpu: bool = False) -> Layer:
    """The model repository as one tar.gz layer under /models, byte-identical for identical content:
    sorted entries, fixed owner, mode and mtime, gzip header without name or time; each model's
    instances on the GPU when `gpu`, else on the CPU."""
    root = Path(model_repo_dir)
    if not root.is_dir():
        raise ConfigError(f"model repository {root} does not exist", "run `radstream model build` first")
    paths = sorted((p for p in root.rglob("*") if not _skipped(p.relative_to(root))),
                   key=lambda p: p.relative_to(root).parts)
    if not any(p.is_file() for p in paths):
        raise ConfigError(f"model repository {root} holds no files", "run `radstream model build` first")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_entry(MODELS_DIR, directory=True))
        for path in paths:
            name = f"{MODELS_DIR}/{path.relative_to(root).as_posix()}"
            if path.is_dir():
                tar.addfile(_entry(name, directory=True))
            else:
                data = _served_bytes(path, path.relative_to(root), gpu)
                tar.addfile(_entry(name, size=len(data)), io.BytesIO(data))
    return Layer(raw.getvalue())


def _entry(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644  # readable by the non-root serving user
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def compose_image(manifest: dict[str, Any], media_type: str, config: dict[str, Any],
                  layer: Layer) -> tuple[bytes, bytes]:
    """The new (manifest, config) bytes: the base plus `layer`, with the serving command and user.
    Pure and deterministic, so the manifest digest can be compared with what the registry holds."""
    if media_type not in MANIFEST_TYPES:
        raise RadstreamError(f"unsupported base image manifest type {media_type!r}",
                             "use a base image in Docker v2 schema 2 or OCI format")
    new_config = copy.deepcopy(config)
    new_config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(layer.diff_id)
    runtime = new_config.setdefault("config", {})
    runtime["Cmd"] = list(SERVE_CMD)
    runtime["User"] = SERVE_USER
    # Tools check that non-empty history entries match the layers one to one.
    new_config.setdefault("history", []).extend([
        {"created": _EPOCH, "created_by": f"COPY model repository /{MODELS_DIR} # radstream"},
        {"created": _EPOCH, "created_by": f"CMD {json.dumps(SERVE_CMD)} USER {SERVE_USER} # radstream",
         "empty_layer": True},
    ])
    config_bytes = _dump(new_config)
    new_manifest = copy.deepcopy(manifest)
    new_manifest["config"] = {"mediaType": _CONFIG_MEDIA_TYPE[media_type], "size": len(config_bytes),
                              "digest": sha256_digest(config_bytes)}
    new_manifest["layers"] = [*manifest.get("layers", []),
                              {"mediaType": _LAYER_MEDIA_TYPE[media_type], "size": len(layer.blob),
                               "digest": layer.digest}]
    return _dump(new_manifest), config_bytes


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()



def _staged(model_repo_dir: Path, gpu: bool, into: Path) -> Path:
    """A copy of the repository as the image carries it (see _served_bytes), for a Dockerfile build."""
    root, staged = Path(model_repo_dir), into / Path(model_repo_dir).name
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not _skipped(p.relative_to(root))):
        destination = staged / path.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(_served_bytes(path, path.relative_to(root), gpu))
    return staged


def build_and_push(model_repo_dir: Path, base_image_ref: str, target_repo_ref: str, *,
                   credentials: tuple[str, str] | None = None,
                   base_credentials: tuple[str, str] | None = None,
                   builder: str = "daemonless", platform: str = PLATFORM, gpu: bool = False,
                   work_dir: Path | None = None, dockerfile: Path | None = None,
                   log: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Build the serving image for `model_repo_dir` (its instances on the GPU when `gpu`) and push it
    as `<target_repo_ref>:serving-<hash>` (serving_tag).

    `credentials` (username, password) are for the target registry, `base_credentials` for the base
    image's (the target's are reused when both are the same registry; anonymous otherwise).
    Returns {"image", "digest", "tag", "pushed_blobs", "mounted_blobs", "skipped", "builder"}."""
    if builder not in BUILDERS:
        raise ConfigError(f"unknown image builder {builder!r}", f"use one of {', '.join(BUILDERS)}")
    target = parse_reference(target_repo_ref)
    if target.tag or target.digest:
        raise ConfigError(f"target {target_repo_ref!r} must name a repository without tag or digest",
                          "the tag is derived from the base image and the model repository's content")
    base = parse_reference(base_image_ref)
    layer = model_layer(Path(model_repo_dir), gpu)
    tag = serving_tag(base_image_ref, layer)
    if base_credentials is None and base.registry == target.registry:
        base_credentials = credentials
    target_client = RegistryClient(target.registry, Credentials(*credentials) if credentials else None)
    try:
        if builder != "daemonless":
            if shutil.which(builder):
                with tempfile.TemporaryDirectory(prefix="radstream-context-", dir=work_dir) as context:
                    return _build_with_tool(builder, _staged(Path(model_repo_dir), gpu, Path(context)), base, target,
                                            tag, target_client, credentials,
                                            dockerfile or manifest("docker", "Dockerfile.triton"), log)
            log(f"{builder} is not installed; building the image without a container engine")
        base_client = (target_client if base.registry == target.registry and base_credentials == credentials
                       else RegistryClient(base.registry, Credentials(*base_credentials) if base_credentials else None))
        try:
            return _build_daemonless(layer, tag, base, base_client, target, target_client, platform, work_dir, log)
        finally:
            if base_client is not target_client:
                base_client.close()
    finally:
        target_client.close()


def platform_manifest(client: RegistryClient, image: ImageRef, platform: str = PLATFORM) -> tuple[dict[str, Any], str]:
    """(manifest, media type) of `image` for `platform`, through its index when it has one."""
    manifest_bytes, media_type = client.get_manifest(image.repository, image.reference)
    manifest = json.loads(manifest_bytes)
    if media_type in INDEX_TYPES:
        manifest_bytes, media_type = client.get_manifest(image.repository, select_platform(manifest, platform))
        manifest = json.loads(manifest_bytes)
    return manifest, media_type


def _build_daemonless(layer: Layer, tag: str, base: ImageRef, base_client: RegistryClient, target: ImageRef,
                      target_client: RegistryClient, platform: str, work_dir: Path | None,
                      log: Callable[[str], None]) -> dict[str, Any]:
    manifest, media_type = platform_manifest(base_client, base, platform)
    config = json.loads(base_client.get_blob(base.repository, manifest["config"]["digest"]))
    new_manifest, new_config = compose_image(manifest, media_type, config, layer)
    digest = sha256_digest(new_manifest)
    result: dict[str, Any] = {"image": str(target.with_tag(tag).with_digest(digest)), "digest": digest, "tag": tag,
              "pushed_blobs": 0, "mounted_blobs": 0, "skipped": False, "builder": "daemonless"}
    if target_client.manifest_digest(target.repository, tag) == digest:
        log(f"{target.with_tag(tag)} is already in the registry; nothing to push")
        return {**result, "skipped": True}

    same_registry = base.registry == target.registry
    for blob in manifest.get("layers", []):
        if target_client.blob_exists(target.repository, blob["digest"]):
            continue
        location = None
        if same_registry:
            location = target_client.mount_blob(target.repository, blob["digest"], base.repository)
            if location is None:
                result["mounted_blobs"] += 1
                continue
        # No mount possible: copy (into the upload session a refused mount opened, if any).
        log(f"copying base layer {blob['digest'][:19]} ({blob['size'] / 1e6:.1f} MB)")
        copy_blob(base_client, base.repository, target_client, target.repository, blob["digest"], blob["size"],
                  work_dir, location)
        result["pushed_blobs"] += 1
    for data in (layer.blob, new_config):
        blob_digest = sha256_digest(data)
        if not target_client.blob_exists(target.repository, blob_digest):
            target_client.upload_blob(target.repository, blob_digest, data, len(data))
            result["pushed_blobs"] += 1
    pushed = target_client.put_manifest(target.repository, tag, new_manifest, media_type)
    if pushed != digest:
        raise RadstreamError(f"the registry stored {target.with_tag(tag)} as {pushed}, expected {digest}",
                             "the registry rewrote the manifest; report this registry's type")
    log(f"pushed {target.with_tag(tag)} ({result['pushed_blobs']} blobs uploaded, "
        f"{result['mounted_blobs']} mounted)")
    return result


def _build_with_tool(tool: str, model_repo_dir: Path, base: ImageRef, target: ImageRef, tag: str,
                     target_client: RegistryClient, credentials: tuple[str, str] | None, dockerfile: Path,
                     log: Callable[[str], None]) -> dict[str, Any]:
    """Shell out to docker, buildah or podman with the Dockerfile; the registry is asked for the digest."""
    image = target.with_tag(tag)
    result = {"image": str(image), "digest": None, "tag": tag, "pushed_blobs": 0, "mounted_blobs": 0,
              "skipped": False, "builder": tool}
    existing = target_client.manifest_digest(target.repository, tag)
    if existing:
        log(f"{image} is already in the registry; nothing to build")
        return {**result, "image": str(image.with_digest(existing)), "digest": existing, "skipped": True}
    if credentials:
        # The password goes through stdin: never on a command line where `ps` would show it.
        _run([tool, "login", "--username", credentials[0], "--password-stdin", target.registry], credentials[1])
    build = [tool, "bud"] if tool == "buildah" else [tool, "build"]
    _run([*build, "-f", str(dockerfile), "--build-arg", f"BASE_IMAGE={base}",
          "--build-arg", f"MODEL_REPO={model_repo_dir.name}", "-t", str(image), str(model_repo_dir.parent)])
    _run([tool, "push", str(image)])
    digest = target_client.manifest_digest(target.repository, tag)
    if digest is None:
        raise RadstreamError(f"{tool} pushed {image} but the registry has nothing under that tag",
                             f"check that {tool} pushes to {target.registry} (its login, proxy or mirror settings)")
    log(f"pushed {image} with {tool}")
    return {**result, "image": str(image.with_digest(digest)), "digest": digest}


def _run(command: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(command, input=stdin, text=True, capture_output=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RadstreamError(f"`{' '.join(command[:2])}` failed: " + " | ".join(tail),
                             f"check that {command[0]} works on this machine, or set triton.builder: daemonless")
