"""Reverse tunnels: agents (a node behind a firewall) dial the proxy's 3024 and keep the
connection; the proxy opens channels back over it to reach the agent's node SSH server.

server.py   the proxy's listener (TunnelServer: who may hold a tunnel, dial through one)
agent.py    the node's side (TunnelAgent: dial out, reconnect with backoff and jitter)
bridge.py   one SSH channel <-> one local socket, with flow control both ways
authz.py    pure: which certificate may open a tunnel, and as whom
route.py    pure: how the proxy reaches a registered node (direct dial or tunnel)
"""
