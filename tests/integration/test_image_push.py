"""The serving image: reference parsing and layer determinism (pure), then the daemonless builder
pushing to real registries — Debian's `docker-registry` (the reference implementation of the
distribution API) started on loopback by these fixtures, and the sandbox's ECR-like front over it,
which answers chunked uploads as ECR does."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import requests

from radstream.aws.ecr import ecr_credentials
from radstream.errors import ConfigError
from radstream.inference import image as image_mod
from radstream.inference.image import build_and_push, compose_image, model_layer, serving_tag
from radstream.inference.oci import (
    DOCKER_HUB,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Credentials,
    ImageRef,
    RegistryClient,
    RegistryError,
    copy_blob,
    parse_reference,
    registry_url,
    sha256_digest,
)
from radstream.resources import manifest
from radstream.sandbox.base_image import push_synthetic_base
from radstream.sandbox.ecr_front import EcrFront
from radstream.sandbox.registry import INSTALL_HINT, RegistryServer, SandboxRegistry, registry_binary

# ---------------------------------------------------------------------------------------------
# Pure: references and the layer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ubuntu", ImageRef(DOCKER_HUB, "library/ubuntu")),
        ("ubuntu:22.04", ImageRef(DOCKER_HUB, "library/ubuntu", "22.04")),
        ("docker.io/ubuntu", ImageRef(DOCKER_HUB, "library/ubuntu")),
        ("index.docker.io/bitnami/redis:7", ImageRef(DOCKER_HUB, "bitnami/redis", "7")),
        ("bitnami/redis", ImageRef(DOCKER_HUB, "bitnami/redis")),
        ("nvcr.io/nvidia/tritonserver:24.08-py3", ImageRef("nvcr.io", "nvidia/tritonserver", "24.08-py3")),
        ("localhost/app", ImageRef("localhost", "app")),
        ("127.0.0.1:5000/team/app:v1", ImageRef("127.0.0.1:5000", "team/app", "v1")),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/rs-triton",
         ImageRef("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "rs-triton")),
        ("reg.example:8443/a/b:t@sha256:" + "a" * 64,
         ImageRef("reg.example:8443", "a/b", "t", "sha256:" + "a" * 64)),
        ("reg.example/a/b@sha256:" + "b" * 64, ImageRef("reg.example", "a/b", None, "sha256:" + "b" * 64)),
    ],
)
def test_parse_reference(text: str, expected: ImageRef) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text", ["Upper/Case", "reg.example/a/b@sha256:short", "a:bad!tag", "reg.example/"])
def test_parse_reference_rejects_invalid(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_reference(text)


def test_reference_defaults_and_urls() -> None:
    ref = parse_reference("ubuntu")
    assert ref.reference == "latest"
    assert str(ref.with_tag("x")) == "docker.io/library/ubuntu:x"
    assert parse_reference("a.io/b:t@sha256:" + "c" * 64).reference == "sha256:" + "c" * 64
    assert registry_url(DOCKER_HUB) == "https://registry-1.docker.io"
    assert registry_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_url("localhost:5000") == "http://localhost:5000"
    assert registry_url("[::1]:5000") == "http://[::1]:5000"
    assert registry_url("1.dkr.ecr.us-east-1.amazonaws.com") == "https://1.dkr.ecr.us-east-1.amazonaws.com"


def test_credentials_repr_hides_password() -> None:
    assert "s3cret" not in repr(Credentials("AWS", "s3cret"))


def _fake_model_repo(root: Path, weights: bytes = b"\x00\x01weights" * 100) -> Path:
    repo = root / "model_repo"
    (repo / "radstream_cxr" / "1").mkdir(parents=True)
    (repo / "radstream_cxr" / "config.pbtxt").write_text('name: "radstream_cxr"\nplatform: "onnxruntime_onnx"\n')
    (repo / "radstream_cxr" / "labels.txt").write_text("Atelectasis\nCardiomegaly\n")
    (repo / "radstream_cxr" / "1" / "model.onnx").write_bytes(weights)
    return repo


def _members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return tar.getmembers()


def test_layer_is_bit_for_bit_deterministic(tmp_path: Path) -> None:
    first = _fake_model_repo(tmp_path / "a")
    second = _fake_model_repo(tmp_path / "b")
    # Different mtimes, permissions and creation order must not matter; junk files are ignored.
    os.utime(second / "radstream_cxr" / "labels.txt", (1_000_000, 1_000_000))
    (second / "radstream_cxr" / "1" / "model.onnx").chmod(0o600)
    (second / ".DS_Store").write_bytes(b"junk")
    (second / "radstream_cxr" / "__pycache__").mkdir()
    (second / "radstream_cxr" / "__pycache__" / "m.pyc").write_bytes(b"junk")
    layer_a, layer_b = model_layer(first), model_layer(first)
    assert layer_a.blob == layer_b.blob
    assert model_layer(second).blob == layer_a.blob
    assert layer_a.digest == sha256_digest(layer_a.blob)
    assert layer_a.diff_id == sha256_digest(gzip.decompress(layer_a.blob))
    assert layer_a.blob[4:8] == b"\x00\x00\x00\x00"  # gzip header mtime

    members = _members(layer_a.blob)
    assert [m.name for m in members] == [
        "models", "models/radstream_cxr", "models/radstream_cxr/1", "models/radstream_cxr/1/model.onnx",
        "models/radstream_cxr/config.pbtxt", "models/radstream_cxr/labels.txt",
    ]
    assert {(m.uid, m.gid, m.mtime, m.uname) for m in members} == {(0, 0, 0, "")}
    assert {m.mode for m in members if m.isfile()} == {0o644}
    assert {m.mode for m in members if m.isdir()} == {0o755}


def test_the_tag_covers_the_base_image_and_the_model(tmp_path: Path) -> None:
    base = "nvcr.io/nvidia/tritonserver:24.08-py3"
    layer = model_layer(_fake_model_repo(tmp_path / "a"))
    other = model_layer(_fake_model_repo(tmp_path / "b", weights=b"other weights"))
    assert serving_tag(base, layer) == serving_tag(base, model_layer(_fake_model_repo(tmp_path / "c")))
    assert serving_tag(base, other) != serving_tag(base, layer)
    assert serving_tag("nvcr.io/nvidia/tritonserver:24.09-py3", layer) != serving_tag(base, layer)
    assert serving_tag(base, layer).startswith("serving-")


def test_a_gpu_image_serves_each_model_on_the_gpu(tmp_path: Path) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    repo = _fake_model_repo(tmp_path)
    (repo / "radstream_cxr" / "config.pbtxt").write_text(
        'name: "radstream_cxr"\nplatform: "onnxruntime_onnx"\ninstance_group { count: 2 kind: KIND_CPU }\n')

    def served_config(gpu: bool) -> mc.ModelConfig:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(model_layer(repo, gpu).blob))) as tar:
            handle = tar.extractfile("models/radstream_cxr/config.pbtxt")
            assert handle is not None
            return text_format.Parse(handle.read().decode(), mc.ModelConfig())

    gpu, cpu = served_config(True), served_config(False)
    assert [(g.count, g.kind) for g in gpu.instance_group] == [(2, mc.ModelInstanceGroup.KIND_GPU)]
    assert [(g.count, g.kind) for g in cpu.instance_group] == [(2, mc.ModelInstanceGroup.KIND_CPU)]
    assert gpu.platform == cpu.platform == "onnxruntime_onnx"
    assert model_layer(repo, True).diff_id != model_layer(repo, False).diff_id  # and so another tag


def test_layer_refuses_missing_or_empty_repository(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        model_layer(tmp_path / "nope")
    (tmp_path / "empty" / "radstream_cxr").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no files"):
        model_layer(tmp_path / "empty")


def test_compose_keeps_base_and_sets_serving_command(tmp_path: Path) -> None:
    layer = model_layer(_fake_model_repo(tmp_path))
    base_manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1,
                                "digest": "sha256:" + "0" * 64},
                     "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 3,
                                 "digest": "sha256:" + "1" * 64}]}
    base_config = {"os": "linux", "architecture": "amd64", "config": {"Env": ["A=1"]},
                   "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "2" * 64]},
                   "history": [{"created_by": "base"}]}
    manifest_bytes, config_bytes = compose_image(base_manifest, OCI_MANIFEST, base_config, layer)
    assert (manifest_bytes, config_bytes) == compose_image(base_manifest, OCI_MANIFEST, base_config, layer)
    manifest, config = json.loads(manifest_bytes), json.loads(config_bytes)
    assert manifest["layers"][0] == base_manifest["layers"][0]
    assert manifest["layers"][1] == {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                     "size": len(layer.blob), "digest": layer.digest}
    assert manifest["config"]["digest"] == sha256_digest(config_bytes)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "2" * 64, layer.diff_id]
    assert config["config"] == {"Env": ["A=1"], "Cmd": ["tritonserver", "--model-repository=/models"],
                                "User": "1000:1000"}
    assert len([h for h in config["history"] if not h.get("empty_layer")]) == 2
    assert base_config["rootfs"]["diff_ids"] == ["sha256:" + "2" * 64]  # the input is left alone


def test_dockerfile_matches_daemonless_image() -> None:
    dockerfile = manifest("docker", "Dockerfile.triton").read_text()
    assert f"CMD {json.dumps(image_mod.SERVE_CMD)}" in dockerfile
    assert f"USER {image_mod.SERVE_USER}" in dockerfile
    assert "COPY ${MODEL_REPO}/ /models/" in dockerfile


def test_ecr_credentials_from_moto() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        host, username, password = ecr_credentials(boto3.client("ecr", region_name="eu-west-1"))
    assert re.fullmatch(r"\d{12}\.dkr\.ecr\.eu-west-1\.amazonaws\.com", host)
    assert username == "AWS"
    assert password


def test_build_rejects_tagged_target_and_unknown_builder(tmp_path: Path) -> None:
    repo = _fake_model_repo(tmp_path)
    with pytest.raises(ConfigError, match="without tag"):
        build_and_push(repo, "127.0.0.1:1/base:1", "127.0.0.1:1/target:latest")
    with pytest.raises(ConfigError, match="unknown image builder"):
        build_and_push(repo, "127.0.0.1:1/base:1", "127.0.0.1:1/target", builder="kaniko")


# ---------------------------------------------------------------------------------------------
# Real registries
# ---------------------------------------------------------------------------------------------


def _registry_binary() -> str:
    found = registry_binary()
    if not found and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "docker-registry"], capture_output=True, timeout=600)
        found = registry_binary()
    if not found:
        pytest.skip(f"Debian's docker-registry is not installed and could not be: {INSTALL_HINT}")
    return found


class Registry(RegistryServer):
    """A docker-registry process on loopback, with its storage and log in a temp directory."""

    def __init__(self, root: Path, auth: str | None = None, tokens: TokenServer | None = None):
        auth_block = ""
        self.credentials: tuple[str, str] | None = None
        if auth == "htpasswd":
            # With a missing htpasswd file the registry provisions a user and logs its password.
            auth_block = f"auth:\n  htpasswd:\n    realm: radstream-test\n    path: {root / 'htpasswd'}\n"
        elif auth == "token":
            auth_block = (f"auth:\n  token:\n    realm: {tokens.realm}\n    service: {TOKEN_SERVICE}\n"
                          f"    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {tokens.ca_path}\n")
            self.credentials = TOKEN_USER
        super().__init__(root, _registry_binary(), auth_block)
        self.start()
        if auth == "htpasswd":
            found = re.search(r"password=(\S+) user=(\S+)", self.log_path.read_text())
            assert found, "the registry did not log the provisioned password"
            self.credentials = (found.group(2), found.group(1))

    def client(self) -> RegistryClient:
        return RegistryClient(self.host, Credentials(*self.credentials) if self.credentials else None)

    def stored_files(self) -> set[str]:
        return {str(p.relative_to(self.storage)) for p in self.storage.rglob("*")}


@pytest.fixture(scope="module")
def secured_registry(tmp_path_factory: pytest.TempPathFactory):
    registry = Registry(tmp_path_factory.mktemp("secured"), auth="htpasswd")
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory):
    registry = Registry(tmp_path_factory.mktemp("open"))
    yield registry
    registry.stop()


TOKEN_SERVICE = "radstream-test-registry"
TOKEN_ISSUER = "radstream-test-issuer"
TOKEN_USER = ("builder", "token-password")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A minimal token service for the registry's Bearer flow: RS256 JWTs whose x5c certificate the
    registry trusts. Anonymous callers get pull only; TOKEN_USER gets what it asks for."""

    def __init__(self, root: Path):
        import datetime
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self.ca_path = root / "token-ca.pem"
        self.ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        header = _b64url(json.dumps({"typ": "JWT", "alg": "RS256", "x5c": x5c}).encode())
        self.requests: list[tuple[str | None, list[str]]] = []
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                query = parse_qs(urlsplit(self.path).query)
                user = None
                if self.headers.get("Authorization", "").startswith("Basic "):
                    given = base64.b64decode(self.headers["Authorization"][6:]).decode()
                    if given != ":".join(TOKEN_USER):
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = TOKEN_USER[0]
                scopes = query.get("scope", [])
                server_self.requests.append((user, scopes))
                access = []
                for scope in scopes:
                    kind, repo, actions = scope.split(":")
                    granted = actions.split(",") if user else [a for a in actions.split(",") if a == "pull"]
                    access.append({"type": kind, "name": repo, "actions": granted})
                issued = int(time.time())
                claims = {"iss": TOKEN_ISSUER, "sub": user or "", "aud": query["service"][0], "exp": issued + 300,
                          "nbf": issued - 10, "iat": issued, "jti": os.urandom(8).hex(), "access": access}
                signing_input = f"{header}.{_b64url(json.dumps(claims).encode())}"
                signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
                body = json.dumps({"token": f"{signing_input}.{_b64url(signature)}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory):
    tokens = TokenServer(tmp_path_factory.mktemp("tokens"))
    yield tokens
    tokens.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer):
    registry = Registry(tmp_path_factory.mktemp("token"), auth="token", tokens=token_server)
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def docker_base(secured_registry: Registry) -> str:
    client = secured_registry.client()
    push_synthetic_base(client, "base/triton", "1", "amd64", DOCKER_MANIFEST)
    client.close()
    return f"{secured_registry.host}/base/triton:1"


@pytest.fixture(scope="module")
def multi_arch_base(open_registry: Registry) -> tuple[str, dict]:
    """An OCI index with arm64 first, so picking linux/amd64 is not luck."""
    client = open_registry.client()
    arm = push_synthetic_base(client, "base/multi", "arm64", "arm64", OCI_MANIFEST)
    amd = push_synthetic_base(client, "base/multi", "amd64", "amd64", OCI_MANIFEST)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [arm, amd]}).encode()
    client.put_manifest("base/multi", "2", index, OCI_INDEX)
    client.close()
    return f"{open_registry.host}/base/multi:2", amd


def _pull(client: RegistryClient, repo: str, reference: str) -> tuple[dict, dict]:
    manifest_bytes, _ = client.get_manifest(repo, reference)
    manifest = json.loads(manifest_bytes)
    return manifest, json.loads(client.get_blob(repo, manifest["config"]["digest"]))


@pytest.mark.slow
def test_push_then_second_run_uploads_nothing(secured_registry: Registry, docker_base: str, tmp_path: Path) -> None:
    repo = _fake_model_repo(tmp_path)
    target = f"{secured_registry.host}/radstream/triton"
    first = build_and_push(repo, docker_base, target, credentials=secured_registry.credentials)

    layer = model_layer(repo)
    tag = serving_tag(docker_base, layer)
    assert first["tag"] == tag
    assert first["image"] == f"{target}:{tag}@{first['digest']}"
    assert (first["pushed_blobs"], first["mounted_blobs"], first["skipped"]) == (2, 1, False)

    client = secured_registry.client()
    assert client.manifest_digest("radstream/triton", tag) == first["digest"]
    manifest, config = _pull(client, "radstream/triton", tag)
    base_manifest, base_config = _pull(client, "base/triton", "1")
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["layers"][:-1] == base_manifest["layers"]
    assert manifest["layers"][-1]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    pushed_layer = client.get_blob("radstream/triton", manifest["layers"][-1]["digest"])
    assert pushed_layer == layer.blob
    assert config["rootfs"]["diff_ids"] == [*base_config["rootfs"]["diff_ids"],
                                            sha256_digest(gzip.decompress(pushed_layer))]
    assert config["config"]["Entrypoint"] == ["/entrypoint.sh"]
    assert config["config"]["Cmd"] == ["tritonserver", "--model-repository=/models"]
    assert {m.name for m in _members(pushed_layer)} >= {"models/radstream_cxr/1/model.onnx"}

    before = secured_registry.stored_files()
    second = build_and_push(repo, docker_base, target, credentials=secured_registry.credentials)
    assert (second["pushed_blobs"], second["mounted_blobs"], second["skipped"]) == (0, 0, True)
    assert second["digest"] == first["digest"]
    assert secured_registry.stored_files() == before  # no upload session was even opened

    (repo / "radstream_cxr" / "1" / "model.onnx").write_bytes(b"retrained weights")
    third = build_and_push(repo, docker_base, target, credentials=secured_registry.credentials)
    assert third["tag"] != first["tag"]
    assert (third["pushed_blobs"], third["mounted_blobs"], third["skipped"]) == (2, 0, False)
    assert client.manifest_digest("radstream/triton", first["tag"]) == first["digest"]
    assert client.manifest_digest("radstream/triton", third["tag"]) == third["digest"]
    client.close()


@pytest.mark.slow
def test_index_base_from_another_registry(secured_registry: Registry, open_registry: Registry,
                                          multi_arch_base: tuple[str, dict], tmp_path: Path) -> None:
    base_ref, amd64 = multi_arch_base
    result = build_and_push(_fake_model_repo(tmp_path), base_ref, f"{secured_registry.host}/radstream/multi",
                            credentials=secured_registry.credentials)
    # The base layer is copied across registries (no mount possible), then the layer and config.
    assert (result["pushed_blobs"], result["mounted_blobs"]) == (3, 0)

    client, source = secured_registry.client(), open_registry.client()
    manifest, config = _pull(client, "radstream/multi", result["tag"])
    amd_manifest, _ = _pull(source, "base/multi", amd64["digest"])
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["layers"][0] == amd_manifest["layers"][0]
    assert manifest["layers"][1]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert config["architecture"] == "amd64"
    assert client.get_blob("radstream/multi", amd_manifest["layers"][0]["digest"])
    client.close()
    source.close()

    with pytest.raises(RegistryError, match="no linux/s390x variant"):
        build_and_push(_fake_model_repo(tmp_path / "other"), base_ref, f"{secured_registry.host}/radstream/multi",
                       credentials=secured_registry.credentials, platform="linux/s390x")


@pytest.fixture(scope="module")
def ecr_front(open_registry: Registry):
    """The sandbox's ECR-like front over the open registry."""
    front = EcrFront(open_registry.host)
    front.start()
    yield front
    front.stop()


CHUNK = 4096
OCTETS = {"Content-Type": "application/octet-stream"}


def _blob(size: int) -> bytes:
    """Distinct bytes in every 32-byte block, so chunks stored out of order would show."""
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size // 32 + 1))[:size]


def _open_upload(host: str, repo: str) -> str:
    opened = requests.post(f"http://{host}/v2/{repo}/blobs/uploads/", timeout=10)
    assert opened.status_code == 202
    return opened.headers["Location"]


def _patch(location: str, chunk: bytes, offset: int) -> requests.Response:
    return requests.patch(location, data=chunk, timeout=10,
                          headers={**OCTETS, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})


@pytest.mark.slow
@pytest.mark.parametrize("registry", ["open_registry", "ecr_front"])
@pytest.mark.parametrize("size", [3 * CHUNK + 512, 3 * CHUNK])  # a short last chunk, a full one
def test_chunked_upload_round_trips(registry: str, size: int, request: pytest.FixtureRequest) -> None:
    client = RegistryClient(request.getfixturevalue(registry).host)
    data, repo = _blob(size), f"chunks/test-{size}"
    digest = sha256_digest(data)
    client.upload_blob(repo, digest, io.BytesIO(data), size, chunk_size=CHUNK)
    assert client.blob_exists(repo, digest)
    assert client.get_blob(repo, digest) == data
    with pytest.raises(RegistryError, match=f"ended after {size - 1} of {size} bytes"):
        client.upload_blob("chunks/short", digest, io.BytesIO(data[:-1]), size, chunk_size=CHUNK)
    client.close()


@pytest.mark.slow
def test_ecr_front_answers_chunks_with_201_and_a_stuck_range(ecr_front: EcrFront) -> None:
    data = _blob(3 * CHUNK)
    first = _patch(_open_upload(ecr_front.host, "raw/range"), data[:CHUNK], 0)
    assert first.status_code == 201  # a client that requires the spec's 202 stops here
    assert first.headers["Range"] == f"0-{CHUNK - 1}"
    second = _patch(first.headers["Location"], data[CHUNK:2 * CHUNK], CHUNK)
    assert second.status_code == 201
    assert second.headers["Range"] == f"0-{CHUNK - 1}"  # stuck on the first chunk
    # A client that resumes where Range says resends the second chunk and is refused (ECR: 416)...
    assert _patch(second.headers["Location"], data[CHUNK:2 * CHUNK], CHUNK).status_code == 416
    # ...one that counts its own offset completes, the last chunk in the closing PUT.
    closed = requests.put(second.headers["Location"], params={"digest": sha256_digest(data)}, data=data[2 * CHUNK:],
                          headers={**OCTETS, "Content-Range": f"{2 * CHUNK}-{3 * CHUNK - 1}"}, timeout=10)
    assert closed.status_code == 201
    assert requests.get(f"{ecr_front.url}/v2/raw/range/blobs/{sha256_digest(data)}", timeout=10).content == data


@pytest.mark.slow
def test_ecr_front_fails_an_empty_closing_put_after_chunks(ecr_front: EcrFront) -> None:
    data = _blob(2 * CHUNK)
    digest = sha256_digest(data)
    location = _open_upload(ecr_front.host, "raw/empty-put")
    for offset in (0, CHUNK):
        location = _patch(location, data[offset:offset + CHUNK], offset).headers["Location"]
    refused = requests.put(location, params={"digest": digest}, timeout=10)
    assert refused.status_code == 500  # what the old client's empty PUT after its chunks met
    assert "send the last chunk in the PUT" in refused.text
    # docker's way, one streamed PATCH then an empty PUT, works on ECR and so here.
    location = _patch(_open_upload(ecr_front.host, "raw/empty-put"), data, 0).headers["Location"]
    assert requests.put(location, params={"digest": digest}, timeout=10).status_code == 201


@pytest.mark.slow
def test_refused_mount_takes_chunks_in_its_fresh_session(ecr_front: EcrFront) -> None:
    client = RegistryClient(ecr_front.host)
    data = _blob(2 * CHUNK + 100)
    digest = sha256_digest(data)
    client.upload_blob("ecr-mount/source", digest, data, len(data), chunk_size=CHUNK)
    assert client.mount_blob("ecr-mount/linked", digest, "ecr-mount/source") is None
    # A repository that lacks the blob cannot be mounted from: a fresh session to upload into.
    location = client.mount_blob("ecr-mount/copied", digest, "ecr-mount/elsewhere")
    assert location is not None
    assert not client.blob_exists("ecr-mount/copied", digest)
    client.upload_blob("ecr-mount/copied", digest, data, len(data), location=location, chunk_size=CHUNK)
    assert client.get_blob("ecr-mount/copied", digest) == data
    client.close()


@pytest.mark.slow
def test_sandbox_registry_is_the_ecr_like_front(tmp_path: Path) -> None:
    _registry_binary()
    (tmp_path / "logs").mkdir()
    service = SandboxRegistry(tmp_path / "registry", tmp_path / "logs")
    published = service.start()
    try:
        assert _patch(_open_upload(published["registry"], "probe/ecr"), b"chunk", 0).status_code == 201
        # What phase 2 pushes there: the model layer on the base image, its layer mounted.
        repo = _fake_model_repo(tmp_path)
        pushed = build_and_push(repo, published["base_image"], f"{published['registry']}/rs-ecr/triton")
        assert (pushed["pushed_blobs"], pushed["mounted_blobs"], pushed["skipped"]) == (2, 1, False)
        client = RegistryClient(published["registry"])
        manifest, _ = _pull(client, "rs-ecr/triton", pushed["tag"])
        assert client.get_blob("rs-ecr/triton", manifest["layers"][-1]["digest"]) == model_layer(repo).blob
        client.close()
    finally:
        service.stop()


@pytest.mark.slow
def test_mount_or_copy_into_the_opened_session(open_registry: Registry) -> None:
    client = open_registry.client()
    data = b"a base layer"
    digest = sha256_digest(data)
    client.upload_blob("mount/source", digest, data, len(data))
    assert client.mount_blob("mount/linked", digest, "mount/source") is None
    assert client.blob_exists("mount/linked", digest)
    # A source repository without the blob: the registry opens an upload session instead.
    location = client.mount_blob("mount/copied", digest, "mount/empty")
    assert location is not None
    assert not client.blob_exists("mount/copied", digest)
    copy_blob(client, "mount/source", client, "mount/copied", digest, len(data), location=location)
    assert client.get_blob("mount/copied", digest) == data
    client.close()


@pytest.mark.slow
def test_wrong_password_is_reported(secured_registry: Registry, docker_base: str, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="HTTP 401") as raised:
        build_and_push(_fake_model_repo(tmp_path), docker_base, f"{secured_registry.host}/radstream/triton",
                       credentials=(secured_registry.credentials[0], "wrong-password"))
    assert "wrong-password" not in str(raised.value)
    assert "refresh" in str(raised.value)


@pytest.mark.slow
def test_missing_tool_falls_back_to_daemonless(secured_registry: Registry, docker_base: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    messages: list[str] = []
    result = build_and_push(_fake_model_repo(tmp_path), docker_base, f"{secured_registry.host}/radstream/fallback",
                            credentials=secured_registry.credentials, builder="podman", log=messages.append)
    assert result["builder"] == "daemonless"
    assert any("podman is not installed" in m for m in messages)


@pytest.mark.slow
def test_bearer_token_flow(token_registry: Registry, token_server: TokenServer, tmp_path: Path) -> None:
    client = token_registry.client()
    push_synthetic_base(client, "base/token", "1", "amd64", DOCKER_MANIFEST)
    client.close()
    base, target = f"{token_registry.host}/base/token:1", f"{token_registry.host}/radstream/token"
    repo = _fake_model_repo(tmp_path)

    first = build_and_push(repo, base, target, credentials=TOKEN_USER)
    assert (first["pushed_blobs"], first["mounted_blobs"]) == (2, 1)
    # The mount asked for one token covering both repositories.
    assert (TOKEN_USER[0], ["repository:radstream/token:pull,push", "repository:base/token:pull"]) \
        in token_server.requests
    assert build_and_push(repo, base, target, credentials=TOKEN_USER)["skipped"] is True

    # Anonymous callers may pull (the public-base-image case) but not push.
    anonymous = RegistryClient(token_registry.host)
    assert anonymous.manifest_digest("radstream/token", first["tag"]) == first["digest"]
    with pytest.raises(RegistryError, match="HTTP 401"):
        anonymous.upload_blob("radstream/token", sha256_digest(b"x"), b"x", 1)
    anonymous.close()
