"""What the tests share: rigs over the real local servers (`events_api`, `worker`, `consent`, and
`host` for the local host's fixture template), fakes at the ports' boundaries for unit tests
(`*_fakes`), the worker's events and messages (`worker_events`), and a Lambda context
(`lambda_context`)."""
