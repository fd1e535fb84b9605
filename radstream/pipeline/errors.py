"""Errors of the study pipeline.

Step Functions matches a Lambda failure by its `errorType`, which is the exception's class name, so
the class names below are an interface: the state machine's Retry/Catch lists and the failure
reports rely on them. Rename nothing; add new classes instead.
"""

from __future__ import annotations

from typing import Any

# The pipeline's stages, in order; `stage` on every error is one of these.
STAGES = ("validate", "prepare", "inference", "store", "telemetry")


class PipelineError(Exception):
    """A study could not go through one stage. `reason` is a sentence for a human."""

    default_stage = "validate"
    retryable = False

    def __init__(self, reason: str, *, stage: str | None = None):
        stage = stage or self.default_stage
        if stage not in STAGES:
            raise ValueError(f"unknown pipeline stage {stage!r}; expected one of {STAGES}")
        super().__init__(reason)
        self.reason = reason
        self.stage = stage

    @property
    def error_type(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "error_type": self.error_type, "message": self.reason}


class InvalidInput(PipelineError):
    """The study itself is unusable; retrying cannot help."""


class InvalidMetadata(InvalidInput):
    """The sidecar (or the DICOM tags standing in for it) breaks the metadata schema."""


class MissingMetadata(InvalidInput):
    """An image arrived without its sidecar. Retryable: clients upload the sidecar first, but a late
    one is waited for a bounded time."""

    retryable = True


class UnsupportedImage(InvalidInput):
    """Not a DICOM/JPEG/PNG the pipeline reads: wrong format, colour, multi-frame, no pixel data, empty."""

    default_stage = "prepare"


class UnsupportedFormat(UnsupportedImage):
    """The content is not DICOM, JPEG or PNG at all (gzip, TIFF, JSON, ...): told from its first bytes
    when the study is validated, whatever its name says."""

    default_stage = "validate"


class NotUnderIncoming(InvalidInput):
    """The object that started the execution is not under incoming/, so it is not a study upload."""


class CorruptImage(InvalidInput):
    """The format is recognised but the data cannot be decoded (truncated, damaged)."""

    default_stage = "prepare"


class ImageTooLarge(InvalidInput):
    """Bytes, pixels or a side exceed the configured limits (this includes decompression bombs)."""

    default_stage = "prepare"


class IdentifiedDicom(InvalidInput):
    """A DICOM still carries patient identity; it must be de-identified before it enters the pipeline."""


class InvalidModelOutput(PipelineError):
    """The model answered with something that is not a probability per label."""

    default_stage = "inference"


class InferenceNotWired(PipelineError):
    """No inference endpoint is configured yet (phase 4 wires it)."""

    default_stage = "inference"


class InferenceUnavailable(PipelineError):
    """The inference server did not answer or is not ready. Retryable with backoff."""

    default_stage = "inference"
    retryable = True


# Every error type the state machine may see, for its Retry/Catch lists and for docs.
_LEAF_ERRORS: tuple[type[PipelineError], ...] = (
    InvalidMetadata,
    MissingMetadata,
    UnsupportedImage,
    UnsupportedFormat,
    NotUnderIncoming,
    CorruptImage,
    ImageTooLarge,
    IdentifiedDicom,
    InvalidModelOutput,
    InferenceNotWired,
    InferenceUnavailable,
)
ERROR_TYPES = tuple(cls.__name__ for cls in _LEAF_ERRORS)
RETRYABLE_ERROR_TYPES = tuple(cls.__name__ for cls in _LEAF_ERRORS if cls.retryable)


def stage_of(error_type: str) -> str | None:
    """The stage an error type is raised in, or None for types not defined here (States.Timeout, ...)."""
    return next((cls.default_stage for cls in _LEAF_ERRORS if cls.__name__ == error_type), None)
