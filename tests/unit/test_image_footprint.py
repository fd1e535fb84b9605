"""The disk an image needs on a node, from its manifest's compressed sizes (pure)."""

from __future__ import annotations

import pytest

from radstream.inference.footprint import GIB, Footprint, disk_problem, footprint


def manifest(*sizes: int) -> dict:
    return {"config": {"size": 1000}, "layers": [{"size": s} for s in sizes]}


def test_the_footprint_counts_every_layer_and_the_config():
    assert footprint(manifest(10, 20)) == Footprint(1030)
    assert footprint({"layers": []}) == Footprint(0)


def test_download_plus_unpacked_plus_system_within_the_usable_share_of_the_disk():
    # 1 GiB compressed stays in the content store, unpacks to 3 GiB, the system takes 8 GiB, and
    # only 85 % of the disk may be used: (1 + 3 + 8) / 0.85.
    assert Footprint(GIB).disk_gib == pytest.approx(12 / 0.85)


def test_a_small_image_fits_eks_default_disk_and_a_stock_triton_sized_one_does_not():
    assert disk_problem("small", footprint(manifest(300_000_000)), 20) is None
    problem = disk_problem("nvcr.io/nvidia/tritonserver:24.08-py3", footprint(manifest(3_800_000_000, 3_800_000_000)), 20)
    assert problem == ("the base image nvcr.io/nvidia/tritonserver:24.08-py3 does not fit the nodes' 20 GiB disk: "
                       "7.6 GB compressed, ~22.8 GB unpacked, plus the system, needs about 43 GiB "
                       "(set nodegroup.disk_gib to at least 43)")
    assert disk_problem("nvcr.io/nvidia/tritonserver:24.08-py3", footprint(manifest(3_800_000_000, 3_800_000_000)),
                        43) is None
