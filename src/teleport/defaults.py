"""Every default of the system, in one place (values from the reference pages)."""

from __future__ import annotations

import os

# Ports
NODE_SSH_PORT = 3022
PROXY_SSH_PORT = 3023
PROXY_TUNNEL_PORT = 3024
AUTH_PORT = 3025
PROXY_WEB_PORT = 3080

# Paths
DATA_DIR = "/var/lib/teleport"
CONFIG_FILE = "/etc/teleport.yaml"
TSH_DIR_NAME = ".tsh"
SQLITE_FILE = "backend.sqlite"
DATA_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600

# Storage
STORAGE_TYPE = "dir"
ETCD_PREFIX = "teleport"
# DynamoDB (teleport.storage type dynamodb): the reference's example table name. The backend polls
# its change log for watches this often (and at once after its own writes); every auth server
# polls, so this bounds how stale another server's caches are. A change-log entry lives this long
# (DynamoDB TTL), bounding how far behind a watcher may fall before it must re-read.
DYNAMODB_TABLE = "teleport.state"
DYNAMODB_POLL_INTERVAL = 0.5
DYNAMODB_CHANGE_LOG_TTL = 3600
# How often the DynamoDB backend scans the whole table for items that expired unseen (written by
# another auth server); items this process wrote are deleted when they fall due.
DYNAMODB_SWEEP_SCAN_INTERVAL = 30.0
# AWS SDK timeouts (seconds) and attempts (botocore's standard retry mode with backoff).
AWS_CONNECT_TIMEOUT = 5.0
AWS_READ_TIMEOUT = 20.0
AWS_MAX_ATTEMPTS = 4
# Audit events and recordings: "dir" keeps both under data_dir/log; dynamodb://TABLE and
# s3://BUCKET/PREFIX move them to AWS (auth_service.audit_events_uri / audit_sessions_uri).
AUDIT_EVENTS_URI = "dir"
AUDIT_SESSIONS_URI = "dir"
# S3 recordings: server-side encryption unless the URI says otherwise (?sse=aws:kms or ?sse=off),
# and uploads above one part go up as multipart in parts of this size (S3's minimum is 5 MiB).
S3_SSE = "AES256"
S3_PART_SIZE = 8 * 1024 * 1024
# A recording being sent to S3 is spooled in memory up to this size, then in a 0600 file under
# data_dir, so that its size bound is checked before anything is uploaded.
S3_SPOOL_MEMORY = 8 * 1024 * 1024

# Limits (teleport.connection_limits). max_connections bounds the concurrent connections from one
# source address on each listener (the reference's per-client-IP meaning); a listener accepts at
# most CONNECTIONS_TOTAL_FACTOR times that in total, so many sources cannot exhaust its memory.
# max_users bounds the distinct authenticated users holding connections on one listener.
MAX_CONNECTIONS = 1000
MAX_USERS = 250
CONNECTIONS_TOTAL_FACTOR = 2
# One bound for every handshake (seconds): the TLS handshake, the first HTTP request's headers
# and the SSH login (key exchange + authentication). Certificate logins need no typing.
HANDSHAKE_TIMEOUT = 30.0
# An HTTP connection idle between requests is closed after this (aiohttp's keepalive_timeout).
HTTP_KEEPALIVE_TIMEOUT = 60.0
# While a listener is full, at most this many refused TLS connections are handshaken to be told
# why (a 429 with a message); beyond that they are closed at once.
MAX_REFUSING_CONNECTIONS = 64
# glibc malloc tuning (service/memory.py): blocks from this size up are mmapped (returned to
# the system when freed), the heap is trimmed above the trim threshold, and free memory is
# handed back every MEMORY_TRIM_INTERVAL seconds.
MALLOC_MMAP_THRESHOLD = 128 * 1024
MALLOC_TRIM_THRESHOLD = 1024 * 1024
MEMORY_TRIM_INTERVAL = 10.0
# SSH keep-alives from the servers: a client silent for interval * count_max is dropped.
SSH_KEEPALIVE_INTERVAL = 300.0
SSH_KEEPALIVE_COUNT_MAX = 3

# Logging
LOG_OUTPUT = "stderr"
LOG_SEVERITY = "ERROR"

# Auth
AUTH_TYPE = "local"
SECOND_FACTOR = "otp"
CA_KEY_TYPE = "ed25519"  # ed25519 | rsa | ecdsa
RSA_KEY_BITS = 2048

# Single sign-on (auth/sso/). AUTH_TYPES are the values of auth_service.authentication.type.
AUTH_TYPES = ("local", "github", "oidc")
# An SSO login request (state, PKCE verifier, nonce, the client's key) lives this long: the user
# has this much time between `tsh login` / the button and the identity provider's redirect back.
SSO_REQUEST_TTL = 10 * 60
# tsh waits this long for the browser to come back to its loopback listener.
SSO_CALLBACK_TIMEOUT = 180.0
# Calls from auth to the identity provider (discovery, token, keys, GitHub's API).
SSO_HTTP_TIMEOUT = 15.0
# The identity provider's keys and discovery document are fetched again after this.
OIDC_DISCOVERY_CACHE_SECONDS = 300.0
OIDC_DEFAULT_SCOPES = ("openid", "email", "profile")
# Clock skew allowed on an ID token's exp/iat/nbf.
OIDC_CLOCK_LEEWAY = 60
# The claim that names the Teleport user, unless a connector sets username_claim.
OIDC_USERNAME_CLAIM = "email"
# GitHub's public endpoints (a connector may name GitHub Enterprise's instead).
GITHUB_ENDPOINT_URL = "https://github.com"
GITHUB_API_ENDPOINT_URL = "https://api.github.com"
# The cookie binding a browser login to the browser that started it (SameSite=Lax: the identity
# provider's redirect back is a top-level cross-site navigation).
SSO_BINDING_COOKIE = "__Host-teleport-sso"

# CA rotation (`tctl auth rotate`): the grace period of an automatic rotation (phases move at a
# third, two thirds and all of it), how often auth moves due phases, and how often nodes and proxies
# poll the CAs to trust new keys and re-issue their host identities. The poll must be well under a
# third of the grace period; TELEPORT_CA_POLL_INTERVAL overrides it (tests use a short one).
ROTATION_GRACE_PERIOD = 30 * 3600
ROTATION_TICK = 1.0
CA_POLL_INTERVAL = float(os.environ.get("TELEPORT_CA_POLL_INTERVAL", "") or 30.0)

# Certificates (seconds)
USER_CERT_TTL = 23 * 3600
MIN_USER_CERT_TTL = 60
MAX_USER_CERT_TTL = 30 * 3600
CERT_BACKDATE = 60  # valid from one minute ago, for clock skew
INTERNAL_TLS_TTL = 10 * 365 * 86400  # host identities do not expire in practice

# Tokens (seconds)
NODE_TOKEN_TTL = 30 * 60
MAX_NODE_TOKEN_TTL = 30 * 60
INVITE_TOKEN_TTL = 3600
MAX_INVITE_TOKEN_TTL = 48 * 3600
TOKEN_BYTES = 16

# Login security. A lock is set per (user, source address): MAX_LOGIN_ATTEMPTS failures from one
# address lock that user out from that address only, so nobody can lock anyone else out.
MAX_LOGIN_ATTEMPTS = 5
ACCOUNT_LOCK_SECONDS = 20 * 60
# The one answer to every refused password login: unknown user, wrong password or code, locked.
LOGIN_FAILED_MESSAGE = "invalid user name, password or one-time code"
# Login attempts (token buckets) at the proxy's login route and at auth: a burst, then a rate.
LOGIN_RATE_PER_ADDR = 1.0  # per second, per source address
LOGIN_BURST_PER_ADDR = 30
LOGIN_RATE_PER_USER = 0.5  # per second, per user name (known or not)
LOGIN_BURST_PER_USER = 10
LOGIN_RATE_MAX_KEYS = 100_000  # buckets remembered per limiter (memory bound)
# Password hashing runs in a thread pool (argon2-cffi releases the GIL) so that the event loop
# stays free; at most HASH_QUEUE_MAX checks wait for a worker, beyond that logins get 429.
HASH_WORKERS = 2
HASH_QUEUE_MAX = 64
TOTP_DIGITS = 6
TOTP_PERIOD = 30
TOTP_SKEW_STEPS = 1
MIN_PASSWORD_LENGTH = 6
MAX_PASSWORD_LENGTH = 128

# Keep-alives: how fast a dead peer is noticed. tsh asks the proxy and the node for a reply every
# CLIENT_KEEPALIVE_INTERVAL seconds and gives up after CLIENT_KEEPALIVE_COUNT_MAX unanswered ones
# (OpenSSH's ServerAliveCountMax); the proxy's TCP connection to a node uses kernel keep-alives.
CLIENT_KEEPALIVE_INTERVAL = 5
CLIENT_KEEPALIVE_COUNT_MAX = 3
RELAY_TCP_KEEPIDLE = 15
RELAY_TCP_KEEPINTVL = 5
RELAY_TCP_KEEPCNT = 3
# Bytes a client may send through the proxy subsystem before the node is connected; past it the
# proxy stops reading the channel (SSH flow control) instead of buffering.
RELAY_PENDING_LIMIT = 256 * 1024
# Session channels one client connection may hold open at the proxy (OpenSSH's MaxSessions), and
# `proxy:@cluster` streams to auth one user may hold at once (each is a connection to auth).
PROXY_MAX_SESSIONS_PER_CONNECTION = 10
PROXY_MAX_AUTH_GATEWAYS_PER_USER = 8
# Audit: the largest session recording (compressed bytes) a node may upload
# (auth_service.max_recording_size). 100 MiB of gzip is roughly 1 GB of terminal output; a larger
# upload is refused so that one node cannot fill the auth server's disk with one request, and the
# node keeps the file (<sid>.cast.gz.rejected) for an admin who raises the limit.
MAX_RECORDING_SIZE = 100 * 1024 * 1024
# Recording proxy mode: lifetime of the host certificates auth signs for the proxy to present to
# clients as the node they asked for (renewed by the proxy well before they expire).
FORWARD_HOST_CERT_TTL = 60 * 60
# How often a proxy re-reads auth_service.session_recording from auth's ping.
RECORDING_MODE_REFRESH = 30.0

# Nodes
SERVER_TTL = 10 * 60
HEARTBEAT_INTERVAL = 60

# Namespaces
NAMESPACE = "default"

# Roles a join token may carry
SYSTEM_ROLES = ("auth", "node", "proxy", "trusted_cluster")
SERVICE_ROLES = ("auth", "node", "proxy")

# Password hashing (argon2id). OWASP's minimum profile: 19 MiB, 2 passes, 1 lane; keeps a login
# request well under 100 ms while staying memory-hard.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_PARALLELISM = 1

# Identity files written by the auth service for tctl on the same host (under data_dir)
ADMIN_IDENTITY_DIR = "keys"

# The DNS name every auth server's TLS certificate carries and every client checks, whatever
# address it dialled (only auth identities are issued with it).
AUTH_SERVER_NAME = "auth.teleport.cluster.local"

# tsh ssh: OpenSSH's escape character for ~. ~? ~~ at the start of a line ("none" turns it off)
ESCAPE_CHAR = "~"
# Names: a login (OS account) is at most this long (useradd's limit on Linux)
MAX_LOGIN_LENGTH = 32

# Reverse tunnels (proxy 3024)
# The spec.addr a node behind a firewall heartbeats with: it is reached only through its tunnel.
TUNNEL_NODE_ADDR = "@tunnel"
# What an agent asks the proxy to "listen" on over its tunnel (a name, never a real socket): the
# proxy opens channels to this host:port back to the agent, which hands them to the node's server.
TUNNEL_NODE_LISTEN_HOST = "node"
TUNNEL_NODE_LISTEN_PORT = 3022
# Agent reconnects: exponential backoff from MIN to MAX seconds, with full jitter; a tunnel that
# stayed up this long resets the backoff.
TUNNEL_RECONNECT_MIN = 0.5
TUNNEL_RECONNECT_MAX = 30.0
TUNNEL_STABLE_AFTER = 30.0
# Both ends probe the tunnel this often; this many missed answers drop it (a proxy that vanished
# without a FIN, or a NAT that forgot the flow): the agent then reconnects.
TUNNEL_KEEPALIVE_INTERVAL = 10.0
TUNNEL_KEEPALIVE_COUNT_MAX = 3
# How long the proxy waits for the agent to accept a channel to its node.
TUNNEL_DIAL_TIMEOUT = 15.0
# The agent's whole connect + handshake to the proxy.
TUNNEL_CONNECT_TIMEOUT = 20.0
# Tunnel channels: a large window and packets, as each byte through a tunnel is encrypted once
# more in the proxy and in the agent (fewer, larger packets cost Python much less per byte).
TUNNEL_WINDOW = 8 * 1024 * 1024
TUNNEL_MAX_PACKET = 256 * 1024

# Nodes that join through the proxy (auth_servers = the proxy's web address, 3080): every call
# to auth is the node's own mutual TLS, relayed end to end by the proxy over a WebSocket
# (reversetunnel/authrelay.py); bounded in total and per source address (generous per source:
# a site of nodes behind one NAT shares one address; each node holds one or two streams at rest,
# and auth's own handshake and idle timeouts close the streams nobody uses).
AUTH_RELAY_MAX_STREAMS = 2048
AUTH_RELAY_MAX_PER_SOURCE = 256
AUTH_RELAY_DIAL_TIMEOUT = 10.0
AUTH_RELAY_MAX_MESSAGE = 1024 * 1024
AUTH_RELAY_PING_INTERVAL = 30.0
# A node's connections to auth through one proxy (each is a relayed stream).
AUTH_RELAY_CLIENT_LIMIT = 8
# How long a node waits for the proxy's answer when it asks whether an address is a proxy.
PROXY_PROBE_TIMEOUT = 10.0
# data_dir file: the proxies a node joined through, and their tunnel addresses (0600).
VIA_PROXY_FILE = "proxies.json"
# A proxy announces its tunnels to auth this soon after one comes or goes (changes coalesced).
TUNNEL_ANNOUNCE_DELAY = 0.2
# A tunnel agent asks auth for the cluster's proxies this often: it keeps a tunnel to each, opens
# one to a new proxy and closes the one to a proxy no longer announced (TELEPORT_TUNNEL_DISCOVERY_
# INTERVAL overrides it, for tests).
TUNNEL_DISCOVERY_INTERVAL = float(os.environ.get("TELEPORT_TUNNEL_DISCOVERY_INTERVAL", "") or 10.0)
# A stopping proxy waits this long for auth to forget its heartbeat.
PROXY_GOODBYE_TIMEOUT = 3.0
# A web port shared with the tunnel listener: connections still being told apart, at most.
PORT_MUX_MAX_PENDING = 1024

# Trusted clusters (trustedcluster/, auth/trust.py)
# The leaf's CA exchange with the root's proxy (connect, TLS, answer).
TRUSTED_CLUSTER_EXCHANGE_TIMEOUT = 20.0
# A leaf's proxy re-reads its trusted clusters this often (new ones get a tunnel, removed or
# disabled ones lose it); the root's proxy re-reads the trusted CAs as often.
TRUSTED_CLUSTER_POLL = 3.0
# A node re-reads the user CAs of trusted root clusters this often (plus up to a fifth of it at
# random, so that thousands of nodes do not ask at once); access itself is decided by auth on
# every login, so a disabled or removed root loses access at once.
TRUSTED_CA_REFRESH = 10.0
# The first line a root's proxy writes on a channel to a leaf (its request) is at most this long.
CLUSTER_REQUEST_MAX = 16384
# A leaf's node list (JSON) as the root's proxy reads it is at most this long.
CLUSTER_NODES_MAX = 64 << 20

# High availability (service/authservers.py, auth/client.py, backend/etcd.py)
# Auth servers register themselves (kind "auth_server") this often, for SERVER_TTL; nodes and
# proxies re-read the list this often and keep it in data_dir/AUTH_SERVERS_FILE (0600), which
# takes precedence over teleport.auth_servers in the file.
AUTH_SERVER_HEARTBEAT_INTERVAL = 30.0
AUTH_SERVERS_REFRESH_INTERVAL = 30.0
AUTH_SERVERS_FILE = "authservers.json"
# AuthClient: one round tries every known auth server at once; when every one refused the
# connection it waits (exponential backoff with full jitter, capped) and tries another round,
# at most AUTH_RETRY_ROUNDS rounds in all; worst case ~ 0.25 + 0.5 + 1 + 2 = 3.75 s of waiting.
AUTH_RETRY_ROUNDS = 5
AUTH_RETRY_BASE_DELAY = 0.25
AUTH_RETRY_MAX_DELAY = 2.0
# etcd: transient errors (leader changed, no leader, timeouts, no reachable member) are retried
# with the same backoff this many times in all before a ConnectionProblem surfaces. An election
# takes ~1-2 s with etcd's default timings, so the budget (~6 s of waiting) covers a few.
ETCD_RETRY_ATTEMPTS = 8
# Caches (service/cache.py, auth/api_cache.py): nodes and proxies long-poll GET /v1/cache for a
# snapshot of what they need to serve with auth down, kept in data_dir/CACHE_DIR (0600). A poll
# waits up to CACHE_WATCH_WAIT seconds for a change (auth caps it at CACHE_WATCH_MAX_WAIT, below
# the auth client's 30 s timeout); writes within CACHE_WATCH_COALESCE seconds make one answer;
# an unreachable auth is asked again after CACHE_RETRY_DELAY seconds.
CACHE_DIR = "cache"
CACHE_WATCH_WAIT = 20.0
CACHE_WATCH_MAX_WAIT = 25.0
CACHE_WATCH_COALESCE = 0.05
CACHE_RETRY_DELAY = 2.0
# How long a node waits for its first snapshot before deciding a connection (fail closed after).
CACHE_FIRST_FILL_TIMEOUT = 10.0
# A proxy asks auth first (a role edit applies at once) and answers from its cache when auth has
# not answered within this many seconds (down, frozen, or partitioned).
CACHE_FALLBACK_AFTER = 5.0

# Shutdown and restart (service/process.py, service/restart.py). SIGQUIT: stop accepting, let live
# sessions finish for at most SHUTDOWN_TIMEOUT seconds (teleport start --shutdown-timeout), exit.
# SIGTERM/SIGINT: at once. SIGHUP: start the successor with the listening sockets, wait up to
# RESTART_READY_TIMEOUT for it to serve, then drain as for SIGQUIT.
SHUTDOWN_TIMEOUT = 300.0
RESTART_READY_TIMEOUT = 60.0
DRAIN_POLL_INTERVAL = 0.2
ETCD_RETRY_BASE_DELAY = 0.1
ETCD_RETRY_MAX_DELAY = 1.5

# Web UI sessions (proxy_service's browser login). A web session is a backend record; it ends after
# WEB_SESSION_IDLE_TIMEOUT without a request, and WEB_SESSION_TTL after login whatever happens.
WEB_SESSION_TTL = 12 * 60 * 60
WEB_SESSION_IDLE_TIMEOUT = 30 * 60
# A web session's last-use time is written back at most this often (not on every request).
WEB_SESSION_TOUCH_INTERVAL = 10.0
# The browser terminal: lifetime of the in-memory certificate the proxy gets for one terminal
# (clamped to what is left of the web session; only the SSH handshake needs it to be valid).
WEB_TERMINAL_CERT_TTL = 2 * 60
# WebAuthn (security keys): how long a challenge lives (each is used once), and the most keys
# a user may register.
WEBAUTHN_CHALLENGE_TTL = 120
WEBAUTHN_MAX_DEVICES = 10
# Cookie holding the web session id (__Host-: Secure, Path=/, no Domain, set by HTTPS only).
WEB_SESSION_COOKIE = "__Host-teleport-session"
# Header carrying the per-session CSRF token on state-changing web API requests.
WEB_CSRF_HEADER = "X-CSRF-Token"
# The browser terminal: largest size a client may ask for; the WebSocket's biggest message.
WEB_TERMINAL_MAX_COLS = 1000
WEB_TERMINAL_MAX_ROWS = 500
WEB_TERMINAL_MAX_MESSAGE = 64 * 1024
# The browser terminal: how long the page has to send its CSRF token after the WebSocket opens.
WEB_TERMINAL_AUTH_TIMEOUT = 10.0
# The browser terminal: WebSocket pings, so that a vanished page ends its SSH session.
WEB_TERMINAL_PING_INTERVAL = 30.0
# The browser terminal re-checks its web session this often and closes when it has ended
# (logout elsewhere, idle timeout, expiry).
WEB_TERMINAL_SESSION_CHECK = 5.0
# At most this many audit events (the newest) in one answer of the web UI's audit log.
WEB_EVENTS_LIMIT = 500

# tsh bench: requests per second and run length when not given (the original's defaults), how
# long one request may take before it counts as failed, and how many may be in flight at once
# (beyond that a request is counted as failed at once rather than delaying the schedule).
BENCH_RATE = 10.0
BENCH_DURATION = "1s"
BENCH_REQUEST_TIMEOUT = 30.0
BENCH_MAX_IN_FLIGHT = 1024
