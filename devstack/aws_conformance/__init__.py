"""Does a local AWS engine keep the rules sipreg relies on? Five checks, over real sockets.

    sqs_fifo.fifo_groups(endpoint)         # SQS FIFO under concurrent pollers, with crashes
    sqs_fifo.fifo_rules(endpoint)          # FIFO receipt handles and deduplication
    transactions.transactions(endpoint)    # DynamoDB TransactWriteItems under concurrency
    policies.iam_policies(endpoint)        # a role's session refused what its policies do not allow
    policies.via_service_kms(endpoint)     # callers of encrypted queues, secrets, tables need the key

Each returns a report whose `violations` lists every broken rule it could prove; the suite runs
them all against the local stack's engine (tests/integration/test_local_aws_conformance.py) and
`bench/aws_engines.py` runs them against every candidate engine to pick one by measurement.
`clients` holds what they share: clients that show every answer, the queues and tables they make;
`rules` the report of the checks made of single requests.

The rules are AWS's:

- FIFO: while any message of a group is in flight (received, not deleted, visibility not yet
  over), no other receive gets a message of that group; a group's messages come out in the order
  they were sent, also after a consumer died and its messages came back; a deleted message never
  comes back; nothing is lost.
- Transactions: all or nothing and isolated. A cancelled transaction writes none of its items;
  a committed one writes all; nothing else's committed write is ever undone; concurrent
  transactions never answer HTTP 500.

The checks only report what they can prove from the client's side: a violation is counted when
the times measured around each request leave no other explanation (e.g. a second receive that
started after the first one answered and itself answered before the first one's delete was sent).
"""
