"""The study pipeline's pure logic, shared by the CLI and the thin Lambda handlers.

No cloud client lives here: functions take bytes or dicts and return bytes or dicts.

  errors      the error types Step Functions Retry/Catch match on
  metadata    the sidecar schema, study ids, metadata from DICOM tags
  readers     DICOM / JPEG / PNG bytes to a grey image, with size limits
  preprocess  grey image to the model input uint8 [1, 224, 224]; .npy encoding
  deid        DICOM de-identification and the identity check before upload
  results     result, failure and telemetry documents and the S3 keys they live under
"""

from __future__ import annotations

# Uploads under this prefix are studies. radstream.names.INCOMING_PREFIX says the same for the CLI
# (the Lambdas carry only this package, and aws/ may not import it); a unit test holds them equal.
INCOMING_PREFIX = "incoming/"
