"""The domain: what wasched keeps and the rules it applies, with no I/O.

- `models`: the records (contacts, templates, schedules, runs, deliveries, users).
- `errors`: the one tree of errors; every message is a sentence a person can act on.
- `when`: the time language (what a person types becomes a `Rule`, a `Rule` fire times).
- `render`: templates and their `{variables}`.
- `recipients`: what a person typed becomes `Recipient`s.
- `session`: the WhatsApp session's states and failures, in the owner's words.
- `clock`: time, injected so tests move it.
"""
