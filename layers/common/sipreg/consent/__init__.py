"""The consent flow: `/oauth/start` and `/oauth/callback` as plain logic, with ports injected.

`flow` holds the flow and its outcomes, `id_tokens` the check of the identity server's ID tokens,
`browser_binding` the cookie that ties a flow to the browser that started it, and `announcements`
how a new consent is announced (`subscriber.consented` on the events queue).
"""
