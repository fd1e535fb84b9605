"""A small client for the OCI distribution API (the protocol ECR, Docker Hub, NGC and the reference
registry speak): image references, manifests, blobs, uploads and the three ways registries
authenticate (anonymous, Basic, and the WWW-Authenticate Bearer token dance).

Passwords and tokens live only in memory on the client object; they are never logged or returned."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from radstream.errors import ConfigError, RadstreamError

if TYPE_CHECKING:
    import requests

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)

# ECR wants PATCH chunks of at least 5 MiB (except the last); bigger chunks mean fewer round trips.
UPLOAD_CHUNK = 32 * 1024 * 1024
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPO_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LOOPBACK = {"localhost", "127.0.0.1", "[::1]"}


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def registry_url(registry: str, scheme: str | None = None) -> str:
    """Base URL of a registry's API. A registry on the loopback interface (tests, the sandbox)
    speaks plain HTTP; every other one HTTPS."""
    host = registry[: registry.index("]") + 1] if registry.startswith("[") else registry.partition(":")[0]
    api_host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
    return f"{scheme or ('http' if host in _LOOPBACK else 'https')}://{api_host}"


@dataclass(frozen=True)
class ImageRef:
    """registry/repository[:tag][@digest]. `tag` and `digest` are None when not written."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest wins over the tag, `latest` when neither."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageRef:
    """Parse an image reference the way docker does: the first path component is a registry only
    when it has a dot, a port or is `localhost`; otherwise it is Docker Hub, whose single-name
    repositories live under `library/`."""
    rest = text.strip()
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ConfigError(f"invalid image digest in {text!r}", "write it as sha256:<64 hex digits>")
    tag = None
    slash = rest.rfind("/")
    if rest.rfind(":") > slash:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.match(tag):
            raise ConfigError(f"invalid image tag {tag!r} in {text!r}", "tags use letters, digits, _ . - (max 128)")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = DOCKER_HUB, rest
    if registry in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_API):
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"
    if not _REPO_PATH.match(repository):
        raise ConfigError(
            f"invalid image repository {repository!r} in {text!r}",
            "repository names are lower-case letters, digits and separators, e.g. registry.example/team/app:tag",
        )
    return ImageRef(registry, repository, tag, digest)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


class RegistryError(RadstreamError):
    """The registry refused or failed a request."""


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', params)}


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class RegistryClient:
    """One registry host. Scopes ("repository:<name>:pull,push") drive the Bearer flow; tokens
    are cached per scope set. Basic credentials are sent only after the registry asks for them."""

    def __init__(self, registry: str, credentials: Credentials | None = None, scheme: str | None = None,
                 timeout: float = 60.0):
        import requests

        self.registry = registry
        self.base = registry_url(registry, scheme)
        self._credentials = credentials
        self._session = requests.Session()
        self._timeout = timeout
        self._auth: dict[tuple[str, ...], str] = {}  # scopes -> Bearer Authorization header
        self._basic: str | None = None  # once a registry asks for Basic, it wants it on every request

    def close(self) -> None:
        self._session.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _request(self, method: str, path_or_url: str, scopes: tuple[str, ...], ok: tuple[int, ...],
                 **kwargs: Any) -> requests.Response:
        url = urljoin(self.base, path_or_url)
        headers = dict(kwargs.pop("headers", {}))
        for attempt in range(2):
            authorization = self._auth.get(scopes) or self._basic
            if authorization:
                headers["Authorization"] = authorization
            response = self._session.request(method, url, headers=headers, timeout=self._timeout, **kwargs)
            if response.status_code == 401 and attempt == 0 and self._authenticate(response, scopes):
                response.close()
                continue
            break
        if response.status_code not in ok:
            raise self._error(method, url, response)
        return response

    def _authenticate(self, response: requests.Response, scopes: tuple[str, ...]) -> bool:
        """Answer a 401 challenge; False when there is nothing more we could try."""
        scheme, params = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            if self._credentials is None or self._basic is not None:
                return False  # nothing to offer, or the credentials were already refused
            raw = f"{self._credentials.username}:{self._credentials.password}".encode()
            self._basic = "Basic " + base64.b64encode(raw).decode()
            return True
        if scheme == "bearer" and params.get("realm"):
            query = [("service", params["service"])] if params.get("service") else []
            query += [("scope", scope) for scope in scopes]
            auth = (self._credentials.username, self._credentials.password) if self._credentials else None
            reply = self._session.get(params["realm"], params=query, auth=auth, timeout=self._timeout)
            if reply.status_code != 200:
                raise RegistryError(
                    f"the token service {params['realm']} refused access to {' '.join(scopes)} "
                    f"(HTTP {reply.status_code})",
                    "check the registry credentials and that the repository exists",
                )
            body = reply.json()
            self._auth[scopes] = "Bearer " + (body.get("token") or body["access_token"])
            return True
        return False

    @staticmethod
    def _error(method: str, url: str, response: requests.Response) -> RegistryError:
        detail = ""
        try:
            errors = response.json().get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except ValueError:
            detail = response.text[:200]
        hint = {
            401: "the registry rejected the credentials: refresh them (ECR tokens last 12 hours)",
            403: "the credentials lack permission for this repository",
            404: "check the image reference and that the repository exists",
        }.get(response.status_code, "retry; if it persists, check the registry's health")
        return RegistryError(f"{method} {url} failed: HTTP {response.status_code} {detail}".strip(), hint)

    @staticmethod
    def _pull(repo: str) -> tuple[str, ...]:
        return (f"repository:{repo}:pull",)

    @staticmethod
    def _push(repo: str) -> tuple[str, ...]:
        return (f"repository:{repo}:pull,push",)

    # -- manifests ----------------------------------------------------------------------------

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str]:
        """The manifest bytes exactly as stored (their sha256 is the digest) and its media type."""
        response = self._request("GET", f"/v2/{repo}/manifests/{reference}", self._pull(repo), (200,),
                                 headers={"Accept": ACCEPT})
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if not media_type:
            media_type = json.loads(response.content).get("mediaType", "")
        return response.content, media_type

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """The digest the registry holds under `reference`, or None when it has nothing there."""
        response = self._request("HEAD", f"/v2/{repo}/manifests/{reference}", self._pull(repo), (200, 404),
                                 headers={"Accept": ACCEPT})
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        return digest or sha256_digest(self.get_manifest(repo, reference)[0])

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        response = self._request("PUT", f"/v2/{repo}/manifests/{reference}", self._push(repo), (201, 200),
                                 data=body, headers={"Content-Type": media_type})
        return response.headers.get("Docker-Content-Digest") or sha256_digest(body)

    # -- blobs --------------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        # Some registries answer with a redirect to storage: that too means the blob is there (and a
        # presigned GET URL would refuse a HEAD, so the redirect is not followed).
        response = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", self._pull(repo), (200, 302, 307, 404),
                                 allow_redirects=False)
        return response.status_code != 404

    def get_blob(self, repo: str, digest: str) -> bytes:
        response = self._request("GET", f"/v2/{repo}/blobs/{digest}", self._pull(repo), (200,))
        if sha256_digest(response.content) != digest:
            raise RegistryError(f"blob {digest} from {repo} does not match its digest", "retry the download")
        return response.content

    def download_blob(self, repo: str, digest: str, sink: IO[bytes]) -> None:
        """Stream a (possibly multi-gigabyte) blob into `sink`, checking its digest on the way."""
        response = self._request("GET", f"/v2/{repo}/blobs/{digest}", self._pull(repo), (200,), stream=True)
        hasher = hashlib.sha256()
        with response:
            for chunk in response.iter_content(1024 * 1024):
                hasher.update(chunk)
                sink.write(chunk)
        if "sha256:" + hasher.hexdigest() != digest:
            raise RegistryError(f"blob {digest} from {repo} does not match its digest", "retry the download")

    def mount_blob(self, repo: str, digest: str, source_repo: str) -> str | None:
        """Ask the registry to link a blob it already holds in `source_repo`. None when mounted;
        otherwise the upload URL of the fresh session the registry opened instead, which the caller
        must upload the blob into (ECR mounts only within one registry, and only with blob mounting
        enabled; it answers every other mount that way)."""
        scopes = self._push(repo) + self._pull(source_repo)
        url = _with_query(f"/v2/{repo}/blobs/uploads/", mount=digest, **{"from": source_repo})
        response = self._request("POST", url, scopes, (201, 202))
        return None if response.status_code == 201 else urljoin(self.base, response.headers["Location"])

    def upload_blob(self, repo: str, digest: str, source: bytes | IO[bytes], size: int,
                    location: str | None = None, chunk_size: int = UPLOAD_CHUNK) -> None:
        """PATCH every chunk but the last, then PUT the last one with the digest (a blob that fits
        in one chunk is one PUT). Shaped by ECR, which answers a PATCH with 201 where the spec says
        202, whose Range header stops advancing after the first chunk (so the offset is counted
        here, never read back), and which can fail an empty closing PUT after chunks with 500."""
        scopes = self._push(repo)
        if location is None:
            opened = self._request("POST", f"/v2/{repo}/blobs/uploads/", scopes, (202,))
            location = urljoin(self.base, opened.headers["Location"])
        offset = 0
        for chunk, last in _chunks(_as_stream(source), size, chunk_size):
            headers = {"Content-Type": "application/octet-stream"}
            if offset or not last:  # a chunk's place in the blob; a whole blob in one PUT needs none
                headers["Content-Range"] = f"{offset}-{offset + len(chunk) - 1}"
            if last:
                self._request("PUT", _with_query(location, digest=digest), scopes, (201,), data=chunk,
                              headers=headers)
                return
            patched = self._request("PATCH", location, scopes, (201, 202), data=chunk, headers=headers)
            location = urljoin(location, patched.headers.get("Location", location))
            offset += len(chunk)


def _as_stream(source: bytes | IO[bytes]) -> IO[bytes]:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _chunks(stream: IO[bytes], size: int, chunk_size: int) -> Iterator[tuple[bytes, bool]]:
    """The `size` bytes of `stream` in chunks of `chunk_size`, each flagged whether it is the last
    (an empty blob is one empty last chunk)."""
    left = size
    while True:
        wanted = min(left, chunk_size)
        chunk = stream.read(wanted)
        if len(chunk) != wanted:
            raise RegistryError(f"the blob source ended after {size - left + len(chunk)} of {size} bytes",
                                "pass the blob's real size")
        left -= wanted
        yield chunk, not left
        if not left:
            return


def copy_blob(source: RegistryClient, source_repo: str, target: RegistryClient, target_repo: str,
              digest: str, size: int, work_dir: Path | None = None, location: str | None = None) -> None:
    """Copy a blob between repositories through a temporary file (base layers can be gigabytes).
    `location` continues an upload session the target already opened (a refused mount)."""
    with tempfile.TemporaryFile(dir=work_dir) as spool:
        source.download_blob(source_repo, digest, spool)
        spool.seek(0)
        target.upload_blob(target_repo, digest, spool, size, location)


def select_platform(index: dict[str, Any], platform: str) -> str:
    """The digest of the manifest for `platform` ("os/arch[/variant]") in an index or list."""
    os_name, arch, *variant = platform.split("/")
    for entry in index.get("manifests", []):
        p = entry.get("platform", {})
        if p.get("os") == os_name and p.get("architecture") == arch and (not variant or p.get("variant") == variant[0]):
            return entry["digest"]
    offered = sorted({f"{m.get('platform', {}).get('os')}/{m.get('platform', {}).get('architecture')}"
                      for m in index.get("manifests", [])})
    raise RegistryError(f"the base image has no {platform} variant (it offers {', '.join(offered) or 'none'})",
                        "pick a base image built for that platform")
