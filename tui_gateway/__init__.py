"""tui-gateway: one local process, an aiohttp gateway in front of many LLM upstreams and a
Textual screen that shows what it does, on one event loop.

Layers, inner to outer (an inner one never imports an outer one):

    domain/     what the gateway knows and decides: requests, routing, learning, controls
    store/      SQLite: the request log, the posteriors' reload, saved controls
    providers/  upstream adapters: speak each provider's API, raise domain errors
    proxy/      the aiohttp app: the client's doors (dialects), the relay, admin endpoints
    tui/        the screen: reads frozen snapshots, calls the state's verbs
    server.py, cli.py   put the parts together and run them
"""
