"""Delivery: due occurrences become runs, runs fan out into deliveries, deliveries are sent.

- `engine`: one APScheduler wake-up at the earliest due schedule; fires, catches up, misses.
- `runs`: fan a run out into deliveries (scheduled, catch-up and manual alike).
- `sender`: the outbox loop, its pacing and retries.
- `receipts`, `ack_watch`: acks asked for after crashes; messages that never reach a phone.
- `notifier`: how delivery tells the outside world (the bot implements it).
"""
