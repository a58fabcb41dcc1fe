"""Adapters to the world outside: the store (SQLite, MongoDB), the WhatsApp sidecar's
client and its contract's models (`sidecar_contract`), core's own HTTP server, metrics and
the store's health.
"""
