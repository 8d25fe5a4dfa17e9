"""A fix for kopf (1.45): a kind whose CRD is deleted while it is watched no longer stops the operator.

When the App CRD goes (`helm uninstall` then install again, an Argo CD re-sync that replaces it, `kubectl delete crd`),
a watch of it may list again before kopf's own CRD observer has stopped it: the apiserver answers 404, and kopf's
orchestrator re-raises the watcher's error, which ends the whole operator (every kind, every namespace). Here the
watch of a kind that is gone just ends: kopf drops its task, and starts a new one when the CRD is back (its CRD
observer revises what it watches).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from kopf._cogs.clients.errors import APINotFoundError
from kopf._core.reactor import queueing

log = logging.getLogger(__name__)

_Task = Callable[..., Coroutine[Any, Any, None]]


def tolerant(original: _Task) -> _Task:
    """`original` (kopf's watcher), ending quietly when the apiserver no longer serves the kind it watches."""

    async def run(**kwargs: Any) -> None:
        try:
            await original(**kwargs)
        except APINotFoundError as error:
            log.warning("the watch of %s ended: the apiserver no longer serves it (%s)", kwargs.get("resource"), error)

    return run


def install() -> None:
    """Wrap kopf's watcher as its orchestration calls it (queueing.watcher)."""
    queueing.watcher = tolerant(queueing.watcher)
