"""A tiny synthetic base image for registries without the real Triton image (the sandbox's, tests').

The stock NGC image is many gigabytes; the sandbox never runs the serving image's filesystem (its
kubelet simulation points Triton pods at the local Triton process), so what the builder needs is only
a valid image to append the model layer to: one small layer, a config and a manifest."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from typing import TYPE_CHECKING, Any

from radstream.inference.oci import DOCKER_MANIFEST, OCI_MANIFEST, sha256_digest

if TYPE_CHECKING:
    from radstream.inference.oci import RegistryClient

SANDBOX_BASE_REPOSITORY = "sandbox/tritonserver-base"
SANDBOX_BASE_TAG = "1"


def tar_gz_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip layer holding `files`: (blob as pushed, diff_id of the uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256_digest(tar_bytes)


def push_synthetic_base(client: RegistryClient, repository: str, tag: str, arch: str = "amd64",
                        media_type: str = DOCKER_MANIFEST, release: str = "1") -> dict[str, Any]:
    """Push a one-layer linux/`arch` image as `repository:tag` in Docker v2 or OCI format (`release`
    goes into its /etc/os-release: another release is another image).

    Deterministic, so pushing it again changes nothing. Returns the manifest's descriptor with its
    platform, ready to list in an image index."""
    oci = media_type == OCI_MANIFEST
    blob, diff_id = tar_gz_layer({"etc/os-release": f"ID=synthetic\nARCH={arch}\nVERSION_ID={release}\n".encode()})
    config = json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Entrypoint": ["/entrypoint.sh"], "Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "synthetic base"}],
    }).encode()
    for data in (blob, config):
        client.upload_blob(repository, sha256_digest(data), data, len(data))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json" if oci
                   else "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": sha256_digest(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip" if oci
                    else "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(blob), "digest": sha256_digest(blob)}],
    }).encode()
    digest = client.put_manifest(repository, tag, manifest, media_type)
    return {"mediaType": media_type, "size": len(manifest), "digest": digest,
            "platform": {"os": "linux", "architecture": arch}}
