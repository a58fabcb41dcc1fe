"""The services the bot calls: schedules, contacts, templates, logs, the WhatsApp link.

The bot imports these (and the domain), never the store or the delivery machinery.
"""
