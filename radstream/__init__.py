"""RadStream: a chest X-ray inference pipeline on AWS (or a local sandbox), phase by phase."""

__version__ = "0.1.0"
