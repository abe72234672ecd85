"""Every default of the system, in one place (values from the reference pages)."""

from __future__ import annotations

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

# Limits
MAX_CONNECTIONS = 1000
MAX_USERS = 250

# Logging
LOG_OUTPUT = "stderr"
LOG_SEVERITY = "ERROR"

# Auth
AUTH_TYPE = "local"
SECOND_FACTOR = "otp"
CA_KEY_TYPE = "ed25519"  # ed25519 | rsa | ecdsa
RSA_KEY_BITS = 2048

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

# Login security
MAX_LOGIN_ATTEMPTS = 5
ACCOUNT_LOCK_SECONDS = 20 * 60
TOTP_DIGITS = 6
TOTP_PERIOD = 30
TOTP_SKEW_STEPS = 1
MIN_PASSWORD_LENGTH = 6
MAX_PASSWORD_LENGTH = 128

# Audit: the largest session recording (compressed bytes) a node may upload
# (auth_service.max_recording_size). 100 MiB of gzip is roughly 1 GB of terminal output; a larger
# upload is refused so that one node cannot fill the auth server's disk with one request, and the
# node keeps the file (<sid>.cast.gz.rejected) for an admin who raises the limit.
MAX_RECORDING_SIZE = 100 * 1024 * 1024

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
