"""Will an image fit on a node's disk? Estimated from its manifest alone, before anything is pulled.

A manifest lists each layer's compressed size only. What a node needs for an image, with
C = the compressed layers and config (what a pull downloads):

    disk needed = (C + U + S) / F

  - C stays on disk: containerd keeps the downloaded blobs in its content store after unpacking.
  - U = C x UNPACK_RATIO, the unpacked layers (the snapshot the container runs from). gzip'd image
    layers typically unpack to 2-2.5x (the stock Triton image: ~7.5 GB to ~15.5 GB); 3x errs on
    the side of refusing.
  - S = SYSTEM_GIB: the OS of the EKS AMI, the system images every node runs (aws-node,
    kube-proxy, coredns, pause) and logs.
  - F = USABLE_FRACTION: above 85 % disk use the kubelet starts deleting images
    (imageGCHighThresholdPercent) and soon evicts pods (imagefs.available < 15 %)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GIB = 2**30
UNPACK_RATIO = 3.0
SYSTEM_GIB = 8.0
USABLE_FRACTION = 0.85


@dataclass(frozen=True)
class Footprint:
    compressed: int  # bytes a pull downloads

    @property
    def unpacked(self) -> int:
        return int(self.compressed * UNPACK_RATIO)

    @property
    def disk_gib(self) -> float:
        """The node disk the image needs, by the formula above."""
        return ((self.compressed + self.unpacked) / GIB + SYSTEM_GIB) / USABLE_FRACTION


def footprint(manifest: dict[str, Any]) -> Footprint:
    """The footprint of one platform's image manifest (not an index)."""
    blobs = [*(manifest.get("layers") or []), manifest.get("config") or {}]
    return Footprint(sum(int(b.get("size") or 0) for b in blobs))


def disk_problem(image: str, found: Footprint, disk_gib: int) -> str | None:
    """Why `image` does not fit a node disk of `disk_gib`, or None when it does."""
    if found.disk_gib <= disk_gib:
        return None
    return (f"the base image {image} does not fit the nodes' {disk_gib} GiB disk: {found.compressed / 1e9:.1f} GB "
            f"compressed, ~{found.unpacked / 1e9:.1f} GB unpacked, plus the system, needs about "
            f"{found.disk_gib:.0f} GiB (set nodegroup.disk_gib to at least {int(found.disk_gib) + 1})")


def read_footprint(image: str, credentials: tuple[str, str] | None = None, platform: str | None = None) -> Footprint:
    """The footprint of `image` (for `platform`, default the nodes'), read from its registry: the
    manifest only, no layer is downloaded."""
    from radstream.inference.image import PLATFORM, platform_manifest
    from radstream.inference.oci import Credentials, RegistryClient, parse_reference

    ref = parse_reference(image)
    client = RegistryClient(ref.registry, Credentials(*credentials) if credentials else None)
    try:
        manifest, _ = platform_manifest(client, ref, platform or PLATFORM)
    finally:
        client.close()
    return footprint(manifest)
