"""Errors of the Kubernetes access layer; the transport's exception is chained as the cause."""

from __future__ import annotations


class KubeError(Exception):
    """The apiserver refused or failed a request."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(KubeError):
    pass


class ConflictError(KubeError):
    pass
