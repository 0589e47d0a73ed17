"""`make chaos`: a storm on the local stack, then proof that nothing was lost and every number converged.

    .venv/bin/python -m devstack.chaos                              # 10,000 events over 1,000 numbers
    .venv/bin/python -m devstack.chaos --events 300 --numbers 30    # the small run `make test` does

The stack is the one `make demo` runs (the template's functions on the local host, wg2sim, the
local AWS with IAM enforced), in client-credentials mode so a thousand numbers need no consent
pages, with short retry delays, a 1 s core deadline and a 20 s product token. Several producers
send at once, half through the signed events API, half straight to the FIFO queue; each number
gets upserts, route changes and deletes of two registrations, some sent out of order, some twice
(a tenth: through the API with the same id, which SQS absorbs, or to the queue with a new
deduplication id, which only the worker can absorb). Meanwhile the core answers a fifth of the
calls UNAVAILABLE and lets 5 % stall past the deadline, the identity server is down for a while,
and worker sandboxes are killed in the middle of batches.

When the producers are done every fault stops, and the run waits for the system to settle. Then it
checks, for every number, that the core holds exactly the newest desired state of each of its
registrations and sipreg's record agrees; for every event sent, that its event-log item holds
exactly one final outcome. It prints the figures as a table, writes a PNG of convergence over
time (`--plot`, matplotlib from the bench extra), and exits 1 on any loss or divergence.

Modules: `plan` (the configuration, and what each number is sent and must end with),
`producers` (the threads that send it), `checks` (what the core, the records and the event log
hold afterwards), `report` (the figures, their table and chart), `run` (the storm and the wait
for the system to settle), `__main__` (the program).
"""
