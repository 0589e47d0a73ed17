"""What the tests share: rigs over the real local servers (`events_api`, `worker`, `consent`),
fakes at the ports' boundaries for unit tests (`*_fakes`), and a Lambda context (`lambda_context`)."""
