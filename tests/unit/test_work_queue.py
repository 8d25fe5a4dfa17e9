"""The work queue (handlers/queue.py): events for one App coalesce, one worker at a time per App, a change while
it runs runs it once more, retries back off exponentially with jitter, and nothing per App is kept once done."""

from __future__ import annotations

import asyncio
import itertools

from wharf.handlers.queue import Backoff, WorkQueue


async def _settle(queue: WorkQueue[str], rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0.01)
        if not len(queue):
            return


async def test_events_coalesce_and_an_app_runs_on_one_worker_at_a_time() -> None:
    running: dict[str, int] = {}
    runs: list[str] = []
    gate = asyncio.Event()

    async def work(key: str) -> bool:
        running[key] = running.get(key, 0) + 1
        assert running[key] == 1, "two workers on one App"
        runs.append(key)
        await gate.wait()
        running[key] -= 1
        return False

    queue: WorkQueue[str] = WorkQueue(work, workers=4)
    queue.start()
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    await asyncio.sleep(0.01)
    for _ in range(5):  # while "a" runs: it runs once more afterwards, not five times
        queue.add("a")
    gate.set()
    await _settle(queue)
    await queue.stop()
    assert sorted(runs) == ["a", "a", "b"]
    assert queue.tracked() == 0


async def test_retries_back_off_and_success_forgets_the_failures() -> None:
    results = [True, True, False]
    times: list[float] = []
    loop = asyncio.get_running_loop()

    async def work(key: str) -> bool:
        times.append(loop.time())
        return results.pop(0)

    queue: WorkQueue[str] = WorkQueue(work, workers=1, backoff=Backoff(base=0.02, cap=1.0, jitter=0.0))
    queue.start()
    queue.add("a")
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not results:
            break
    await _settle(queue)
    await queue.stop()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.02
    assert gaps[1] >= 0.04
    assert queue.tracked() == 0


def test_backoff_is_capped_and_jittered_downwards() -> None:
    backoff = Backoff(base=1.0, cap=30.0, jitter=0.2)
    assert 0.8 <= backoff.delay(1) <= 1.0
    assert 6.4 <= backoff.delay(4) <= 8.0
    assert 24.0 <= backoff.delay(50) <= 30.0
