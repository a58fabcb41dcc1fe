"""Delivery: due occurrences become runs, runs fan out into deliveries, deliveries are sent.

- `engine`: one APScheduler wake-up at the earliest due schedule; fires, catches up, misses.
- `runs`: fan a run out into deliveries (scheduled, catch-up and manual alike).
- `states`: every change of a delivery's status (the state machine, drawn there).
- `sender`: the outbox loop, its pacing and retries.
- `acks`: WhatsApp's acks applied to deliveries (events, receipts, checks by the owner).
- `receipts`, `ack_watch`: acks asked for after crashes; messages that never reach a phone.
- `notifier`: how delivery tells the outside world (the bot implements it).
"""
