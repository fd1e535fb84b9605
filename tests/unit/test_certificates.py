"""The deployment's CA and Triton's certificate (radstream.certificates) and their import into ACM
(radstream.aws.acm, against moto's ACM)."""

from __future__ import annotations

import ssl
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from moto import mock_aws

from radstream.aws.acm import delete_certificate, deployment_certificates, ensure_certificate, imported_body
from radstream.aws.inventory import deployment_resources
from radstream.certificates import ensure

NAMES = {"dns_names": ("*.us-east-1.elb.amazonaws.com", "localhost"), "ips": ("127.0.0.1",)}


def test_the_ca_is_kept_private_and_reused_and_the_server_certificate_follows_its_names(tmp_path):
    issued = ensure(tmp_path / "tls", "test-ca", "test-triton", **NAMES)
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    assert stat.S_IMODE(issued.server_key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls" / "ca.key").stat().st_mode) == 0o600
    ca, cert = issued.ca_cert.read_bytes(), issued.server_cert.read_bytes()
    again = ensure(tmp_path / "tls", "test-ca", "test-triton", **NAMES)
    assert (again.ca_cert.read_bytes(), again.server_cert.read_bytes()) == (ca, cert)
    renamed = ensure(tmp_path / "tls", "test-ca", "test-triton", dns_names=("other.example",))
    assert renamed.ca_cert.read_bytes() == ca and renamed.server_cert.read_bytes() != cert


def _serve(issued):
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.server_cert, issued.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_client_trusting_the_ca_verifies_the_server_and_one_trusting_another_ca_refuses_it(tmp_path):
    import urllib.request

    issued = ensure(tmp_path / "tls", "test-ca", "test-triton", **NAMES)
    other = ensure(tmp_path / "other", "other-ca", "other-triton", **NAMES)
    server = _serve(issued)
    url = f"https://127.0.0.1:{server.server_address[1]}/"
    try:
        trusting = ssl.create_default_context(cafile=issued.ca_cert)
        assert urllib.request.urlopen(url, context=trusting, timeout=5).read() == b"ok"
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(url, context=ssl.create_default_context(cafile=other.ca_cert), timeout=5)
    finally:
        server.shutdown()


def _clients(acm):
    made = {"acm": acm}
    return lambda service: made.setdefault(service, boto3.client(service, region_name="us-east-1"))


@pytest.fixture
def acm():
    with mock_aws():
        yield boto3.client("acm", region_name="us-east-1")


def test_the_certificate_is_imported_once_reimported_in_place_when_renewed_and_deleted_quietly(tmp_path, acm):
    tags = {"radstream:deployment": "rs-tls", "radstream:phase": "3"}
    first = ensure(tmp_path / "tls", "ca", "triton", **NAMES)
    files = (first.server_cert.read_bytes(), first.server_key.read_bytes(), first.ca_cert.read_bytes())
    arn = ensure_certificate(acm, "rs-tls", tags, *files)
    assert ensure_certificate(acm, "rs-tls", tags, *files) == arn
    assert ensure_certificate(acm, "rs-tls", tags, *files, known_arn=None) == arn  # found by its tag
    assert deployment_certificates(acm, "rs-tls") == [arn] and deployment_certificates(acm, "other") == []

    renewed = ensure(tmp_path / "tls", "ca", "triton", dns_names=("renewed.example",))
    body = renewed.server_cert.read_bytes()
    assert ensure_certificate(acm, "rs-tls", tags, body, renewed.server_key.read_bytes(), files[2], arn) == arn
    assert imported_body(acm, arn).strip() == body.decode().strip()

    assert deployment_certificates(acm, "rs-tls") == [arn]  # still tagged after the re-import
    assert [r["arn"] for r in deployment_resources(_clients(acm), "rs-tls")] == [arn]  # teardown's leftovers
    delete_certificate(acm, arn)
    delete_certificate(acm, arn)
    assert deployment_certificates(acm, "rs-tls") == [] and imported_body(acm, arn) is None
