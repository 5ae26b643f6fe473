"""The AMQP 1.0 server: SASL ANONYMOUS, connections, sessions, links, $cbs, $management, hub links.

- `frames`: protocol headers, frame and performative encoding, error conditions.
- `addresses`: link addresses and selector filters (where a new receiver starts).
- `links`: sessions and the state of each link.
- `connection`: the handshake, then one connection's frames read in order and dispatched.
- `management`: the $cbs and $management request-reply links.
- `broker`: the listener; binds links to hubs and partitions, routes and delivers events.
"""

from devstack.eventhubs.server.broker import Server

__all__ = ["Server"]
