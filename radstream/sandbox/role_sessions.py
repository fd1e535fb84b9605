"""The credentials Lambda hands a function's runtime: an STS AssumeRole session of its execution role,
named after the function (so GetCallerIdentity answers arn:aws:sts::<account>:assumed-role/<role>/<function>).
Sessions are cached per role and function and renewed while a whole invocation still fits in them."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

SESSION_SECONDS = 3600
# Lambda's longest timeout: a session is renewed before an invocation could outlive it.
RENEW_BEFORE_SECONDS = 900.0


@dataclass(frozen=True)
class Session:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float  # time.time() seconds

    def environment(self) -> dict[str, str]:
        """The variables Lambda's runtime sets; every SDK's default chain reads them."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


class RoleSessions:
    def __init__(self, sts: Callable[[str], Any], clock: Callable[[], float] = time.time) -> None:
        """`sts(region)` returns an STS client (the operator's credentials) for that region."""
        self._sts = sts
        self._clock = clock
        self._sessions: dict[tuple[str, str], Session] = {}
        self._lock = threading.Lock()

    def get(self, role_arn: str, function_name: str, region: str) -> Session:
        key = (role_arn, function_name)
        with self._lock:  # concurrent cold starts of one function share one AssumeRole
            session = self._sessions.get(key)
            if session is None or session.expires_at - self._clock() < RENEW_BEFORE_SECONDS:
                session = self._sessions[key] = self._assume(role_arn, function_name, region)
            return session

    def _assume(self, role_arn: str, function_name: str, region: str) -> Session:
        credentials = self._sts(region).assume_role(
            RoleArn=role_arn, RoleSessionName=function_name[:64], DurationSeconds=SESSION_SECONDS
        )["Credentials"]
        return Session(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
            expires_at=credentials["Expiration"].timestamp(),
        )
