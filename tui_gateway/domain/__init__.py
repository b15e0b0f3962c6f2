"""Pure gateway logic: no I/O, no aiohttp, no Textual. Time and randomness are passed in.

`state.GatewayState` is the one front: a request is a `flow.Flow` indexed by `flows.Flows`;
`routing.Router` plans candidates, `learning.Learner` learns from each attempt (posteriors,
cooldowns, sticky sessions, keys); every change publishes a typed `events.Event`, and
`snapshot.py` builds the frozen `views.Snapshot` the screen and `/gateway/state` read.
"""
