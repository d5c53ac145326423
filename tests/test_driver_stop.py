"""Stopping a driver is prompt, whatever its device is doing.

A driver between polls is woken by ``stop()`` and then cancelled (the bridge's stop and a
reload do both, in that order). On Python 3.11 ``asyncio.wait_for`` swallowed a cancel that
arrived with the wake-up, and the driver went on to poll once more: with an SNMP agent gone,
the bridge took 6.5 s (NUT's timeout x retries) to stop. Here a device whose every poll hangs
for 5 s stands in for it.
"""

from __future__ import annotations

import asyncio
import time

from nutbridge.drivers.base import Driver
from nutbridge.state import Device


class Hanging(Driver):
    """Answers the first poll at once; every later poll hangs like a device that went away."""

    polls = 0

    async def update(self) -> None:
        self.polls += 1
        if self.polls > 1:
            await asyncio.sleep(5)
        self.device.set("ups.status", "OL")


async def test_stop_then_cancel_between_polls_is_prompt() -> None:
    drv = Hanging(Device("ups"), {"pollinterval": "0.2"})
    task = asyncio.create_task(drv.run())
    deadline = time.monotonic() + 5
    while drv.polls < 1 or not drv.connected:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # in wait(), before the next poll is due
    t0 = time.monotonic()
    drv.stop()  # as Bridge.stop and reload do: wake, then cancel in the same loop turn
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert time.monotonic() - t0 < 1.0, time.monotonic() - t0
    assert drv.polls == 1  # woken by stop(): no last poll of a device that may be gone


async def test_stop_alone_ends_the_loop_without_another_poll() -> None:
    drv = Hanging(Device("ups"), {"pollinterval": "5"})
    task = asyncio.create_task(drv.run())
    deadline = time.monotonic() + 5
    while drv.polls < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    drv.stop()
    await asyncio.wait_for(task, 2)
    assert time.monotonic() - t0 < 1.0 and drv.polls == 1
