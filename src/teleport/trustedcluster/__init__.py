"""Trusted clusters: a leaf cluster trusts a root cluster's user CA (mapping the roles in the
root's certificates to its own), the root trusts the leaf's host CA, and the leaf keeps a reverse
tunnel open to the root's proxy so that the root's users reach the leaf's nodes.

resource.py   pure: the `trusted_cluster` resource, role_map, the static form's key_file
agents.py     the leaf proxy's side: one reverse tunnel agent per trusted (root) cluster
exchange.py   the leaf auth's side of the CA exchange with the root's proxy (HTTPS)
"""
