"""Which process this is under pytest-xdist, how many CPUs it may use, and how its progress reaches the terminal.

Under xdist a worker's terminal output is dropped and its stderr lands in the
middle of the controller's progress dots. So the controller hands each worker
an execnet channel with its ``workerinput`` (in ``pytest_configure_node``,
before the worker starts); the worker sends its progress lines on it, and the
controller writes each one on a line of its own as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_isoenv.environ import cpu_count

#: Receives what a worker sends: a line of text, or a tuple of plain values (execnet carries both).
MessageSink = Callable[[Any], None]

#: The ``workerinput`` entry that carries a worker's progress channel.
PROGRESS_CHANNEL = "isoenv_progress"


def workerinput(config: pytest.Config) -> dict[str, Any] | None:
    """What xdist handed this worker (its id, the run id, the worker count), or ``None`` outside a worker."""
    value: dict[str, Any] | None = getattr(config, "workerinput", None)
    return value


def worker_id(config: pytest.Config) -> str | None:
    """This xdist worker's id (``gw0``, ``gw1``...), or ``None`` in the controller or a run without xdist."""
    given = workerinput(config)
    return str(given["workerid"]) if given is not None else None


def build_jobs(config: pytest.Config) -> int:
    """How many builds this process runs at once: one per CPU, shared out among the xdist workers."""
    given = workerinput(config)
    workers = int(given["workercount"]) if given is not None else 1
    return max(1, cpu_count() // workers)


def open_progress_channel(node: Any, write: MessageSink) -> None:
    """Give the worker *node* (xdist's ``WorkerController``) a channel whose messages the controller *write*s.

    Called from ``pytest_configure_node``, before the worker starts: its
    ``workerinput`` travels to it over execnet, which carries channels too.
    *write* runs in execnet's receiver thread of that worker, so it must be
    quick and safe to call from several threads.
    """
    channel = node.gateway.newchannel()
    channel.setcallback(write)
    node.workerinput[PROGRESS_CHANNEL] = channel


def progress_sender(config: pytest.Config) -> MessageSink | None:
    """In an xdist worker that got a progress channel, a function that sends a message to the controller."""
    given = workerinput(config)
    channel = given.get(PROGRESS_CHANNEL) if given is not None else None
    if channel is None:
        return None

    def send(message: Any) -> None:
        if not channel.isclosed():
            channel.send(message)

    return send
