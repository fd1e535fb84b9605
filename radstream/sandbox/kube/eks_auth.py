"""How the emulator authenticates like EKS: a bearer token is `k8s-aws-v1.` + the base64url of a
presigned STS GetCallerIdentity URL (what `radstream.kube.client.eks_token` makes).

EKS's authenticator checks the URL's shape, that `x-k8s-aws-id` is a signed header, and that
X-Amz-Date is less than 15 minutes old (X-Amz-Expires is ignored beyond 0..900), then lets STS check
the signature and name the caller. Moto checks no signature, so the sandbox does not either: it
admits the one access key id the daemon made (its EKS access entry), which is why that id is kept
private in sandbox.json."""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import re
import time
from urllib.parse import parse_qs, urlsplit

from radstream.kube.client import EKS_CLUSTER_HEADER, EKS_TOKEN_LIFETIME_SECONDS, EKS_TOKEN_PREFIX

# Lets tests (and the curious) shorten the sandbox's token lifetime; EKS's is fixed.
TOKEN_SECONDS_ENV = "RADSTREAM_SANDBOX_TOKEN_SECONDS"
MAX_TOKEN_BYTES = 4096
_STS_HOST = re.compile(r"sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?")
_ALLOWED_PARAMS = frozenset({
    "action", "version", "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires",
    "x-amz-security-token", "x-amz-signature", "x-amz-signedheaders",
})


def _decode(token: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _epoch(amz_date: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def token_problem(token: str, *, access_key_id: str, lifetime: float = EKS_TOKEN_LIFETIME_SECONDS,
                  now: float | None = None) -> str | None:
    """Why EKS would answer 401 to this bearer token, or None when it is accepted."""
    if len(token) > MAX_TOKEN_BYTES:
        return "token is too large"
    if not token.startswith(EKS_TOKEN_PREFIX):
        return f"token is missing the {EKS_TOKEN_PREFIX!r} prefix"
    url = _decode(token[len(EKS_TOKEN_PREFIX):])
    if url is None:
        return "token is not base64url"
    parts = urlsplit(url)
    if parts.scheme != "https" or not _STS_HOST.fullmatch(parts.hostname or "") or parts.path != "/":
        return "token is not a presigned STS URL"
    raw = parse_qs(parts.query, keep_blank_values=True)
    if any(len(values) != 1 for values in raw.values()):
        return "a query parameter is repeated"
    query = {key.lower(): values[0] for key, values in raw.items()}
    if unexpected := sorted(set(query) - _ALLOWED_PARAMS):
        return f"unexpected query parameter {unexpected[0]!r}"
    if query.get("action") != "GetCallerIdentity":
        return "the presigned action is not GetCallerIdentity"
    if EKS_CLUSTER_HEADER not in query.get("x-amz-signedheaders", "").lower().split(";"):
        return f"the {EKS_CLUSTER_HEADER} header is not signed"
    if not query.get("x-amz-expires", "").isdigit() or int(query["x-amz-expires"]) > 900:
        return "X-Amz-Expires is not between 0 and 900"
    signed_at = _epoch(query.get("x-amz-date", ""))
    if signed_at is None:
        return "X-Amz-Date is missing or malformed"
    if (time.time() if now is None else now) > signed_at + lifetime:
        return f"the token expired ({lifetime:g} s after X-Amz-Date)"
    if not query.get("x-amz-signature"):
        return "the URL is not signed"
    if not hmac.compare_digest(query.get("x-amz-credential", "").split("/")[0].encode(), access_key_id.encode()):
        return "the signing access key has no access to this cluster"
    return None
