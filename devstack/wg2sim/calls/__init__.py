"""The emulated core's call path: a call from one number to another, routed by their registrations
as WG2 describes it (docs/call-routing.md has the rules with the product page's leg numbers).

    router = CallRouter(sim, listener, client_context([pbx_ca_file]))
    result = router.place(CallRequest("+4799990009", "+4799990001", "answer"))
    result.to_json()   # {"sip_status": 200, "answered_by": "sips:...", "legs": [{"leg": 2, ...}, ...]}

Legs, numbered as on the product page: 1 the caller to the core (what `sip_status` of the call
says the caller got), 2 the core to the TAS, 3 the TAS back to the core (Loop), 4 the core to the
B-party's phone. Legs 2 and 3 are real SIP over TLS (`sip/`): leg 2 goes to the registration's
`sips:` URI, leg 3 arrives on the core's own SIP port. The phones (leg 4, and the caller) are
emulated: the radio side of a mobile core is not SIP on the internet. The callee's behaviour
(`answer`, `busy`, `no-answer`) is what the B-party's phone does.

Times are emulator seconds scaled by the clock's time factor: the 30 s no-answer timeout (and so
Fallback on no answer) lasts 30/F real seconds.

Modules: `model` (the request and what the admin API shows of a call and its legs), `legs` (the
emulated phone, and what becomes of a leg to a TAS), `router` (the routing itself, and what
arrives at the core's SIP port).
"""
