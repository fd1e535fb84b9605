"""AWS's Resource Groups Tagging API keeps listing a deleted resource, with its tags, for a while;
moto's GetResources reads the live backends, so a deleted resource vanishes from it at once and an
inventory that trusts the listing looks right here and reports phantoms on AWS.

Every delete call (and S3's DeleteBucket, which moto dispatches its own way) remembers the tagged
resources it made disappear, and GetResources keeps answering them for a window,
RADSTREAM_SANDBOX_TAGGING_LAG_SECONDS (0 turns the lag off)."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

WINDOW_ENV = "RADSTREAM_SANDBOX_TAGGING_LAG_SECONDS"
DEFAULT_WINDOW_S = 5.0
_DELETING = ("Delete", "Deregister", "Terminate")

Fix = Callable[[Callable[..., Any]], Callable[..., Any]]

# (account, region) -> ARN -> (the resource as last listed, monotonic time of its deletion)
_deleted: dict[tuple[str, str], dict[str, tuple[Any, float]]] = {}
_lock = threading.Lock()


def _window() -> float:
    return float(os.environ.get(WINDOW_ENV, DEFAULT_WINDOW_S))


def _live(account_id: str, region: str) -> dict[str, Any]:
    """Every resource the tagging API can see right now, tagged or not, tags copied: a deleted
    resource's must outlive it."""
    from moto.core.resource_tagging import iter_taggable_backends

    return {resource.arn: dataclasses.replace(resource, tags=dict(resource.tags))
            for backend in iter_taggable_backends(account_id, region)
            for resource in backend.iter_tagged_resources()}


def _remembering(account_id: str, region: str, call: Callable[[], Any]) -> Any:
    if _window() <= 0:
        return call()
    before = {arn: resource for arn, resource in _live(account_id, region).items() if resource.tags}
    try:
        return call()
    finally:
        gone = before.keys() - _live(account_id, region).keys()
        if gone:
            now = time.monotonic()
            with _lock:
                _deleted.setdefault((account_id, region), {}).update({arn: (before[arn], now) for arn in gone})


def _recently_deleted(account_id: str, region: str) -> list[Any]:
    horizon = time.monotonic() - _window()
    with _lock:
        memory = _deleted.get((account_id, region), {})
        for arn in [arn for arn, (_, when) in memory.items() if when < horizon]:
            del memory[arn]
        return [resource for resource, _ in memory.values()]


def deletes_are_remembered(original: Callable[..., Any]) -> Callable[..., Any]:
    """BaseResponse.call_action: a Delete*/Deregister*/Terminate* action notes what it removed."""

    def call_action(self):
        if not (self._get_action() or "").startswith(_DELETING):
            return original(self)
        return _remembering(self.current_account, self.region, lambda: original(self))

    return call_action


def bucket_deletes_are_remembered(original: Callable[..., Any]) -> Callable[..., Any]:
    """S3Response.delete_bucket, which S3's own dispatch calls without call_action."""

    def delete_bucket(self):
        return _remembering(self.current_account, self.region, lambda: original(self))

    return delete_bucket


def deleted_resources_stay_listed(original: Callable[..., Any]) -> Callable[..., Any]:
    """ResourceGroupsTaggingAPIBackend._get_resources_generator: the live resources, then those
    deleted within the window that match the same filters (unless one of that ARN exists again)."""
    from moto.core.resource_tagging import make_tag_matcher, match_resource_type

    def _get_resources_generator(self, tag_filters=None, resource_type_filters=None,
                                 resource_arn_list=None) -> Iterator[Any]:
        yield from original(self, tag_filters=tag_filters, resource_type_filters=resource_type_filters,
                            resource_arn_list=resource_arn_list)
        stale = _recently_deleted(self.account_id, self.region_name)
        if not stale:
            return
        live, matches = _live(self.account_id, self.region_name), make_tag_matcher(tag_filters)
        for resource in stale:
            if (resource.arn not in live and matches(resource.tags)
                    and match_resource_type(resource.resource_type, resource_type_filters)
                    and (not resource_arn_list or resource.arn in resource_arn_list)):
                yield resource

    return _get_resources_generator


def install(wrap: Callable[[type, str, Fix], None]) -> None:
    """Apply the lag through moto_fixes' wrap(owner, attribute, fix)."""
    from moto.core.responses import BaseResponse
    from moto.resourcegroupstaggingapi.models import ResourceGroupsTaggingAPIBackend
    from moto.s3.responses import S3Response

    wrap(BaseResponse, "call_action", deletes_are_remembered)
    wrap(S3Response, "delete_bucket", bucket_deletes_are_remembered)
    wrap(ResourceGroupsTaggingAPIBackend, "_get_resources_generator", deleted_resources_stay_listed)
