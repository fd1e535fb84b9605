"""Glue takes a crawler's role as a name or an ARN but always answers with the name (with its path,
"service-role/x" for arn:...:role/service-role/x); moto echoes what it was given. Answer as Glue does,
so a caller comparing the ARN it sent with what it reads back sees the drift it would see on AWS."""

from __future__ import annotations

from typing import Any, Callable

from radstream.aws.iam import role_name_with_path


def crawler_answers_role_name(original: Callable[..., Any]) -> Callable[..., Any]:
    def as_dict(self):
        described = original(self)
        return {**described, "Role": role_name_with_path(described["Role"])}

    return as_dict


def install(wrap: Callable[[type, str, Callable[..., Any]], None]) -> None:
    from moto.glue.models import FakeCrawler

    wrap(FakeCrawler, "as_dict", crawler_answers_role_name)
