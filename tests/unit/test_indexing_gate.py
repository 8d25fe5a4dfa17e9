"""kopf's "indexed" gate (wharf.handlers.indexing_gate): a watch stopped before its listing is done (its namespace
deleted meanwhile) must not keep every handler waiting. kopf's own orchestration, with the watch stream replaced by
one that never lists (as when custom resources answer 429 after an apiserver restart)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import watching
from kopf._cogs.configs import configuration
from kopf._cogs.structs import references
from kopf._core.reactor import orchestration, queueing

from wharf.handlers import indexing_gate

APPS = references.Resource(group="wharf.dev", version="v1alpha1", plural="apps", namespaced=True)


async def _never_lists(**_: Any) -> AsyncIterator[Any]:
    await asyncio.Event().wait()
    yield watching.Bookmark.LISTED  # pragma: no cover  (never reached)


async def _processor(**_: Any) -> None:
    return None


async def _gate_after_a_namespace_comes_and_goes_while_listing() -> bool:
    paused = aiotoggles.ToggleSet(any)
    ensemble = orchestration.Ensemble(
        operator_indexed=aiotoggles.ToggleSet(all),
        operator_paused=paused,
        peering_missing=await paused.make_toggle(name="peering"),
    )
    await orchestration.spawn_missing_watchers(
        processor=_processor,
        settings=configuration.OperatorSettings(),
        indexed_resources={APPS},
        watched_resources={APPS},
        watched_namespaces={"restart-4"},
        ensemble=ensemble,
    )
    await asyncio.sleep(0.05)
    assert ensemble.operator_indexed.is_off()  # listing: handlers wait, as they should
    await orchestration.terminate_redundancies(
        remaining_resources={APPS}, remaining_namespaces={None}, ensemble=ensemble
    )  # the namespace deleted
    return ensemble.operator_indexed.is_on()


async def test_a_watch_stopped_before_its_listing_releases_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "infinite_watch", _never_lists)
    monkeypatch.setattr(queueing, "watcher", indexing_gate.releasing(queueing.watcher))
    monkeypatch.setattr(queueing, "worker", indexing_gate.releasing(queueing.worker))
    assert await _gate_after_a_namespace_comes_and_goes_while_listing()


async def test_without_the_fix_kopf_keeps_the_gate_shut(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kopf behaviour the fix is for: if this starts passing, kopf fixed it and the wrapper can go.
    monkeypatch.setattr(watching, "infinite_watch", _never_lists)
    assert not await _gate_after_a_namespace_comes_and_goes_while_listing()
