"""Kubernetes access: client construction (sandbox emulator, kubeconfig or EKS token)."""
