"""The local target: emulated AWS (moto plus the gaps it leaves filled), the Kubernetes API
emulator and a local Triton, hosted by one background daemon (see daemon.py)."""
