"""Composition: where each function's objects are built from its typed settings.

One module per function, each with the same two entry points:

    build(settings)    the function's object, from settings (tests pass their own)
    from_env()         the process's object, from the environment, built once (cold start)

| function (template.yaml)       | handler                              | composition module             |
|--------------------------------|--------------------------------------|--------------------------------|
| EventsApiFunction              | functions/events_api/app.py          | sipreg.wiring.events_api       |
| OAuthStartFunction             | functions/oauth_start/app.py         | sipreg.wiring.consent          |
| OAuthCallbackFunction          | functions/oauth_callback/app.py      | sipreg.wiring.consent          |
| RegistrationWorkerFunction     | functions/registration_worker/app.py | sipreg.wiring.registration_worker |
| RefresherFunction              | functions/refresher/app.py           | sipreg.wiring.refresher        |
| EndpointHealthFunction         | functions/endpoint_health/app.py     | sipreg.wiring.endpoint_health  |

`sipreg.wiring.parts` builds what two functions share (the token service, the core client).
Nothing here holds logic: a module imports only what its own function needs, so a cold start
loads no other function's dependencies.
"""
