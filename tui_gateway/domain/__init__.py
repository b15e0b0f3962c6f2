"""Pure gateway logic: no I/O, no aiohttp, no Textual. Time and randomness are passed in."""
