"""What a :class:`Client` and a :class:`Subscriber` share: a ZeroMQ context
they may own, one socket per endpoint, a poller over those sockets, and the
closing of it all."""
from __future__ import annotations

from typing import Any, List, TypeVar

import zmq

_Self = TypeVar("_Self", bound="SocketOwner")


class SocketOwner:
    """Base of the classes whose ``_endpoints`` each hold a ``socket``."""

    _own_context: bool
    _context: zmq.Context
    _endpoints: List[Any]
    _poller: zmq.Poller

    def _poll_endpoints(self) -> None:
        """Makes the poller that waits for input on every endpoint's socket."""
        self._poller = zmq.Poller()
        for ep in self._endpoints:
            self._poller.register(ep.socket, zmq.POLLIN)

    def close(self) -> None:
        """Closes the sockets (and the context if this object made it). Idempotent."""
        for ep in self._endpoints:
            ep.socket.close(linger=0)
        self._endpoints = []
        if self._own_context and self._context is not None:
            self._context.term()
            self._context = None  # type: ignore[assignment]

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
