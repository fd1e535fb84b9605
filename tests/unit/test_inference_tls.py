"""The invoke Lambda's call to Triton: TLS verified against the deployment's CA, and no plaintext
endpoint that would cross a network (radstream.pipeline.inference_call)."""

from __future__ import annotations

import numpy as np
import pytest

from radstream.pipeline.errors import InferenceNotWired, InferenceUnavailable
from radstream.pipeline.inference_call import base_url, infer


@pytest.mark.parametrize("endpoint", ["http://10.1.2.3:8000", "10.1.2.3:8000",
                                      "http://internal-a1-1.us-east-1.elb.amazonaws.com:80"])
def test_a_plaintext_endpoint_that_is_not_loopback_is_refused_before_any_connection(endpoint):
    with pytest.raises(InferenceNotWired, match="refusing the plaintext inference endpoint"):
        infer(np.zeros((1, 4, 4), np.uint8), endpoint=endpoint, model="m", retries=0)


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000",
                                      "https://10.1.2.3:443"])
def test_loopback_plaintext_and_any_https_endpoint_are_accepted(endpoint):
    assert base_url(endpoint + "/") == endpoint


def test_a_server_whose_certificate_another_ca_signed_is_unavailable(tmp_path):
    from radstream.certificates import ensure
    from tests.unit.test_certificates import NAMES, _serve

    server = _serve(ensure(tmp_path / "tls", "ca", "triton", **NAMES))
    other = ensure(tmp_path / "other", "other-ca", "other", **NAMES).ca_cert.read_text()
    try:
        with pytest.raises(InferenceUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            infer(np.zeros((1, 4, 4), np.uint8), endpoint=f"https://127.0.0.1:{server.server_address[1]}",
                  model="m", retries=0, ca_pem=other)
    finally:
        server.shutdown()
