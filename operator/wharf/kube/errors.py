"""Errors of the Kubernetes access layer; the transport's exception is chained as the cause."""

from __future__ import annotations


class KubeError(Exception):
    """The apiserver refused or failed a request."""

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or message  # the apiserver's own message, without the request line

    @property
    def refused(self) -> bool:
        """For a write: the apiserver judged the request itself (invalid, forbidden, a kind it does not serve), so
        sending it again changes nothing until someone changes the object or the cluster."""
        return self.status in (400, 403, 404, 422)


class NotFoundError(KubeError):
    pass


class ConflictError(KubeError):
    pass
