"""Why an App cannot be rendered: permanent until someone changes the App, the image or the policy."""

from __future__ import annotations

from wharf.api.conditions import Reason


class RenderError(ValueError):
    """The App and its image cannot become a workload; `reason` is the Stalled condition's reason."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
