"""The events API's logic, kept out of the Lambda handler.

`models` holds the wire shapes (and so the OpenAPI document), `gate` the checks on the raw request
that come before any parsing (size, signature, content type), `service` what each route does, and
`problems` the one place where domain errors become HTTP answers (RFC 9457 problem documents).
"""
