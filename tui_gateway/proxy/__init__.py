"""The aiohttp side: the doors clients knock on (`dialects/`), serving one request
(`serve.py`: parse, route, relay, log), trying candidates and keeping streams alive
(`relay.py`, `chunks.py`, `watchdog.py`), client-shaped errors, auth and the admin API."""
