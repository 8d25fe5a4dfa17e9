"""Kubernetes access: the only layer (with the handlers' kopf calls) that talks to the apiserver."""

from wharf.kube.client import Kube
from wharf.kube.errors import ConflictError, KubeError, NotFoundError

__all__ = ["ConflictError", "Kube", "KubeError", "NotFoundError"]
