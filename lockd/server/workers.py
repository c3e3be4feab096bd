"""``lockd serve --workers N``: uvicorn's supervisor, each worker on its own listening socket.

uvicorn's workers share one listening socket, and the worker that wakes first
accepts every connection waiting. A client that keeps a few connections open —
a load balancer's or an ingress's keep-alive pool, a load generator — so lands
them all on one worker while the others idle (measured with 8 connections and
two workers: 39 of 40 CPU-seconds in one of them, the machine half idle).

On Linux the parent binds one socket per worker to the same address with
``SO_REUSEPORT``, and the kernel spreads new connections over the sockets by
their addresses. Each worker serves its own socket; one that dies is replaced
on the same socket, which the parent keeps open meanwhile (connections hashed
to it wait in its backlog instead of failing). Elsewhere the workers share one
socket, as uvicorn does.

The supervision itself (health pings, restarts, SIGHUP, shutdown) is
uvicorn's: :class:`BalancedWorkers` runs each of its steps for one worker
slot at a time, with that slot's socket.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from uvicorn import Config
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import Process

_log = logging.getLogger("uvicorn.error")


def balanced_workers_supported() -> bool:
    """Whether the kernel balances connections over ``SO_REUSEPORT`` sockets (Linux 3.9+)."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def bind_listeners(host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    """``count`` sockets listening on ``host:port`` with ``SO_REUSEPORT``, inheritable by
    workers.

    They listen from the start: the kernel spreads connections over the listening
    sockets of the group only, so a socket whose worker is still starting would get none
    (and the first worker up would get them all, for good). Only processes of the same
    user can bind the address beside them (Linux's rule).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listeners: list[socket.socket] = []
    try:
        for _ in range(count):
            listener = socket.socket(family, socket.SOCK_STREAM)
            listeners.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            listener.bind((host, port))
            listener.listen(backlog)
            listener.set_inheritable(True)
        others = _others_listening(listeners)
        if others:
            raise OSError(errno.EADDRINUSE, "something else already listens there")
    except OSError:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def _others_listening(listeners: Sequence[socket.socket]) -> int:
    """How many listening TCP sockets on the same address are not ``listeners``: another
    ``lockd serve`` bound beside them (``SO_REUSEPORT`` lets any process of the same user
    do so, and the kernel would split the connections between the two)."""
    ours = {str(os.fstat(listener.fileno()).st_ino) for listener in listeners}
    rows: list[list[str]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows += [line.split() for line in Path(table).read_text().splitlines()[1:]]
        except OSError:
            continue
    listening = [row for row in rows if len(row) > 9 and row[3] == "0A"]
    addresses = {row[1] for row in listening if row[9] in ours}
    return sum(1 for row in listening if row[1] in addresses and row[9] not in ours)


class BalancedWorkers(Multiprocess):
    """uvicorn's ``Multiprocess`` with worker ``i`` listening on ``listeners[i]`` only."""

    def __init__(self, config: Config, listeners: Sequence[socket.socket]) -> None:
        super().__init__(config, sockets=[])
        self._listeners = list(listeners)

    def init_processes(self) -> None:
        started: list[Process] = []
        try:
            for listener in self._listeners:
                self.processes = []
                self._one_slot(listener, super().init_processes)
                started += self.processes
        finally:
            self.processes = started  # a failed start leaves the started ones to shut down

    def keep_subprocess_alive(self) -> None:
        self._each_slot(super().keep_subprocess_alive)

    def restart_all(self) -> None:
        # uvicorn keeps the old worker and stops the restart when a new one is not ready
        # in time: then the slots after it are not restarted either.
        self._each_slot(super().restart_all, stop_unless_replaced=True)

    def handle_ttin(self) -> None:
        _log.warning(
            "lockd serve keeps its %d workers: restart it with another --workers",
            len(self._listeners),
        )

    handle_ttou = handle_ttin  # a worker more or fewer would need a socket more or fewer

    def _each_slot(self, step: Callable[[], None], *, stop_unless_replaced: bool = False) -> None:
        """Runs uvicorn's ``step`` over each worker alone, with its own socket (a worker
        replaced there is started on that socket, and kept in that slot)."""
        processes = self.processes
        try:
            for slot, listener in enumerate(self._listeners):
                old = processes[slot]
                self.processes = [old]
                self._one_slot(listener, step)
                processes[slot] = self.processes[0]
                if stop_unless_replaced and processes[slot] is old:
                    return
        finally:
            self.processes = processes

    def _one_slot(self, listener: socket.socket, step: Callable[[], None]) -> None:
        count = self.processes_num
        self.sockets, self.processes_num = [listener], 1
        try:
            step()
        finally:
            self.sockets, self.processes_num = [], count
