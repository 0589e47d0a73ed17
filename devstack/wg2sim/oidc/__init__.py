"""The emulated operator identity server: OAuth 2.0 + OpenID Connect at WG2's paths, strict.

As strict as an OpenID Certified provider in the ways a client can trip over:

- `offline_access` is honoured only with `prompt=consent` (OIDC Core §11); otherwise no refresh token.
- A browser session (cookie `wg2sim_session`, set once the PIN is proven) signs the subscriber in
  for later authorizations, and every authorization of one client in that session adds to the
  same grant: a new code's tokens belong to the grant the earlier ones do.
- Revoking one refresh token revokes its whole grant (RFC 7009 §2.1 allows it), so revoking a
  token that a renewed consent replaced also kills the renewed one's tokens when they share it.
- The authorization response carries `iss` (RFC 9207), announced in the discovery document.
- `phone_number` may be left out of the ID token (`--oidc-phone-number-only-in-userinfo`), as
  certified providers do in the code flow.

A Flask blueprint on the emulator's HTTP app. Its access tokens are the emulator's own
(`Wg2Sim.tokens`), so the gRPC core accepts them: a user token carries the MSISDN the
subscriber proved with an SMS PIN, and the scopes granted.

    GET  /oauth2/auth              checks the request, then the pages: number -> PIN -> consent
                                   (signed in already: consent; granted already and no
                                   prompt=consent: straight back with a code)
    POST /oauth2/token             HTTP Basic client auth; authorization_code (single use, 60 s,
                                   bound to client, redirect URI and PKCE S256 verifier),
                                   refresh_token (rotation; reusing one revokes its family),
                                   client_credentials
    GET  /userinfo                 bearer; sub (pairwise), phone_number, phone_number_verified, sid
    POST /oauth2/revoke            HTTP Basic (RFC 7009); a refresh token revokes its family
    GET  /.well-known/openid-configuration, /.well-known/jwks.json   (ID tokens: RS256)
    GET  /oauth2/sessions/logout
    POST /_admin/rotate-keys       {"keep_previous": true}: a new signing key (old one published
                                   until the next rotation unless keep_previous is false)
    POST /_admin/oidc/clients      {"client_id", "client_secret", "redirect_uris": [...]}: add or replace
    POST /_admin/oidc/unverified-numbers  {"msisdn"}: its phone_number_verified is false from now on

Token lifetimes are the emulator's `--token-ttl` in emulator seconds; `expires_in` and the ID
token's `exp` are given in real seconds (divided by `--time-scale`), since clients use real clocks.
Codes and sign-in pages run on real time too: a person types at real speed.

Modules: `config` (clients, issuer, the command-line flags), `model` (scopes, lifetimes, the
records of sign-ins and grants, the protocol's errors), `authorization` (checking an
authorization request), `provider` (the grant logic and its state), `keys` (the ID tokens'
signing keys), `routes` (the Flask blueprint), `pages` (the HTML the subscriber sees).
"""
