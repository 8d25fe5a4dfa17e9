"""A fix for kopf (1.45): a watch that ends before its listing is done no longer holds every handler forever.

kopf runs no handler (of any object, any kind) until every watch of an indexed kind has listed once: each watch,
and each object first seen while that is pending, holds a toggle of the operator's "indexed" gate until its listing
(or the object) has been indexed. A watch stopped before that (its namespace deleted, or no longer matching), or an
object's worker stopped with it, never lets its toggle go: the gate stays shut, the indexes go on filling, and no
event handler runs again until the operator restarts: wharf's event handlers stop queuing Apps, and new Apps wait
for the safety net. A namespace that comes and goes while its listing waits does it; listings wait longest right
after a kube-apiserver restart (custom resources answer 429 for up to a minute), when kopf also re-lists namespaces
(handlers.namespaces), terminating ones included. Here the toggle goes when its watch or worker ends, however it
ends.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from kopf._core.reactor import queueing

_Task = Callable[..., Coroutine[Any, Any, None]]


def releasing(original: _Task) -> _Task:
    """`original` (kopf's watcher or worker), then, however it ended, its toggle of the gate dropped (dropping one
    already dropped does nothing)."""

    async def run(**kwargs: Any) -> None:
        try:
            await original(**kwargs)
        finally:
            gate, toggle = kwargs.get("operator_indexed"), kwargs.get("resource_indexed")
            if gate is not None and toggle is not None:
                await gate.drop_toggle(toggle)

    return run


_kopf_watcher, _kopf_worker = queueing.watcher, queueing.worker


def install() -> None:
    """Wrap kopf's watcher (called as queueing.watcher by its orchestration) and worker (called as `worker` inside
    the queueing module)."""
    queueing.watcher = releasing(_kopf_watcher)
    queueing.worker = releasing(_kopf_worker)
