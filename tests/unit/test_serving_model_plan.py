"""What phase 2's plan says about the model the next serving image carries, against what serves now."""

from __future__ import annotations

from radstream.phases.p2_triton import model_change

DEFAULT = {"name": "radstream_cxr", "version": 1, "sha256": "a" * 64, "labels": ["x"] * 14, "model_trained": False}
IMPORTED = {"name": "radstream_cxr", "version": 2, "sha256": "b" * 64, "labels": ["Effusion", "Mass"], "model_trained": True}


def test_an_imported_model_is_named_with_the_one_it_replaces() -> None:
    assert model_change(DEFAULT, IMPORTED) == (
        f"radstream_cxr version 2 (sha256 {'b' * 12}, 2 labels), "
        f"replacing radstream_cxr version 1 (sha256 {'a' * 12}, 14 labels, untrained)")


def test_the_same_model_under_a_new_image_says_it_is_already_served() -> None:
    # A new base image alone: the studies are scored by the same model as before.
    assert model_change(IMPORTED, dict(IMPORTED)).endswith(", as served now")


def test_a_first_deployment_and_a_missing_model_say_what_will_serve() -> None:
    assert model_change(None, IMPORTED) == f"radstream_cxr version 2 (sha256 {'b' * 12}, 2 labels)"
    assert model_change(None, None) == "the default model, built in this phase"
