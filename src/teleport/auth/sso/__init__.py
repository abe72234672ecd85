"""Single sign-on: GitHub and OpenID Connect connectors, the login requests and their callbacks.

connectors.py (pure) parses the resources and maps identities to roles and traits; oidc.py and
github.py talk to the identity providers; flow.py is the auth server's mixin that runs a login.
"""
