"""wasched core: data, rules, scheduling and delivery of WhatsApp messages."""

__version__ = "0.1.0"
