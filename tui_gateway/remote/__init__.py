"""The screen attached to a gateway elsewhere (`tui-gateway attach`): the host protocols over HTTP.

    api.py      one authenticated client of a gateway's admin API, errors made plain
    feed.py     `GET /gateway/events` read on and on: snapshots and lines, reconnecting
    state.py    `RemoteState`: what the screen reads (the last snapshot) and its verbs
    gateway.py  `RemoteGateway`: the gateway as the screen sees it, started and stopped by the app

The screen (tui/) cannot tell these from the in-process `GatewayState` and `Gateway`: both
implement `tui/host.py`'s protocols, and every key ends in the same verb, here through the admin
API.
"""
