"""The Textual app: a live view of the gateway, sharing its event loop."""
