"""The sample teleport.yaml printed by `teleport configure`. Pure."""

from __future__ import annotations

from teleport import defaults

_SAMPLE = """\
# Teleport configuration file. By default it is read from {config_file}:
#   teleport configure > {config_file}
#   teleport start --config={config_file}
# Every key is optional; a missing key or section takes the default shown here.
# As printed, this file runs all three services (auth, node, proxy) on this one host.

# Settings shared by every service.
teleport:
  # The name this node is known by (`tsh ssh USER@NAME`). Default: the machine's hostname.
  # nodename: graviton

  # Where Teleport keeps its keys, identities, audit log, recordings and (with the
  # default storage) its database. Keep it private: it holds the cluster's CA keys.
  data_dir: {data_dir}

  # --- joining a cluster whose auth service runs on another host ---------------------
  # One-time join token (from `tctl nodes add`, or a static token of auth_service.tokens).
  # Only used the first time this node or proxy joins; not needed where auth runs locally.
  # auth_token: xxxx-token-xxxx

  # Pin of the cluster's TLS CA as printed by `tctl nodes add`; when set, joining fails
  # unless the auth server presents that CA.
  # ca_pin: sha256:0000000000000000000000000000000000000000000000000000000000000000

  # Addresses (host:port, port {auth_port} by default) of the auth servers to join and talk
  # to; several for a highly available cluster. Default: this host's own auth service.
  # auth_servers:
  #   - 10.1.0.5:{auth_port}

  # The IP address (or name) other hosts reach this node at, when it cannot be
  # discovered, e.g. behind NAT.
  # advertise_ip: 10.1.0.5

  # Connection throttling, to avoid abuse.
  connection_limits:
    max_connections: {max_connections}
    max_users: {max_users}

  # Logging. The output is stderr, stdout, syslog or a file path (e.g.
  # /var/log/teleport.log); the severity is DEBUG, INFO, WARN or ERROR.
  log:
    output: {log_output}
    severity: {log_severity}

  # Storage of the cluster state (users, roles, tokens, nodes) used by the auth service.
  # "dir": an embedded SQLite database under data_dir (one auth server).
  storage:
    type: {storage_type}
  # "etcd": an etcd 3.4+ cluster shared by several auth servers (high availability):
  # storage:
  #   type: etcd
  #   peers: [https://10.1.0.10:2379, https://10.1.0.11:2379]
  #   tls_cert_file: /var/lib/teleport/etcd-client.crt
  #   tls_key_file: /var/lib/teleport/etcd-client.key
  #   tls_ca_file: /var/lib/teleport/etcd-ca.crt
  #   prefix: {etcd_prefix}
  #   insecure: no
  # "dynamodb": an AWS DynamoDB table shared by several auth servers, created when missing:
  # {{type: dynamodb, region: eu-west-1, table_name: {dynamodb_table}, access_key: ..., secret_key: ...}}
  # (without the two keys: the environment's or the instance role's AWS credentials; "endpoint"
  # points it at a DynamoDB-compatible server). Events and recordings can go to AWS too, with
  # auth_service.audit_events_uri ("dynamodb://TABLE", which requires recordings in S3) and
  # auth_service.audit_sessions_uri ("s3://BUCKET/PREFIX", encrypted with AES256 by default).

# The auth service: the cluster's certificate authority and its only stateful part.
auth_service:
  enabled: yes

  # The cluster's name, part of every certificate it signs. Default: a random UUID
  # chosen at first start. IMPORTANT: changing it later invalidates every key and
  # certificate the cluster has issued.
  # cluster_name: main

  # Where the auth API listens (nodes, proxies and tctl connect here).
  listen_addr: 0.0.0.0:{auth_port}

  # Static join tokens, "roles:token", roles from auth, node, proxy, trusted_cluster.
  # Prefer short-lived tokens from `tctl nodes add`; if you use these, make them long
  # and random (e.g. `openssl rand -hex 32`).
  # tokens:
  #   - "proxy,node:xxxxx"
  #   - "auth:yyyy"

  # How users log in: type local (users created with `tctl users add`);
  # second_factor otp (TOTP apps such as Google Authenticator) or off.
  authentication:
    type: {auth_type}
    second_factor: {second_factor}

  # Session recording: node (the node records every interactive session), proxy (the proxy
  # terminates SSH, records and audits the session itself: for OpenSSH nodes; users forward
  # their agent, which tsh does for them) or off.
  session_recording: node

  # The largest session recording (gzip-compressed) a node may upload, as bytes or with a unit
  # (KiB, MiB, GiB; KB, MB, GB). A larger one is refused and kept on its node as
  # <sid>.cast.gz.rejected under data_dir/log/upload/sessions.
  max_recording_size: 100MiB

# The node (SSH) service: lets users log in to this host.
ssh_service:
  enabled: yes

  # Where the SSH server listens.
  listen_addr: 0.0.0.0:{node_port}

  # Static labels of this node, used to find it (`tsh ls env=prod`) and in role rules.
  labels: {{}}
  # labels:
  #   role: master
  #   type: postgres

  # Command labels: the command's output becomes the label's value, re-run every period.
  commands: []
  # commands:
  #   - name: arch
  #     command: [uname, -p]
  #     period: 1h0m0s
  #   - name: kernel
  #     command: [uname, -r]
  #     period: 1h

# The proxy service: the only door into the cluster, for tsh, ssh and the web UI.
proxy_service:
  enabled: yes

  # SSH address tsh and ssh clients connect to.
  listen_addr: 0.0.0.0:{proxy_ssh_port}

  # HTTPS address of the web UI and of `tsh login`.
  web_listen_addr: 0.0.0.0:{proxy_web_port}

  # Reverse tunnel address: nodes and clusters behind firewalls dial out to it.
  # It may equal web_listen_addr (one port for both).
  tunnel_listen_addr: 0.0.0.0:{proxy_tunnel_port}

  # The address agents reach the tunnel listener at, if not public_addr's host
  # and the tunnel_listen_addr port.
  # tunnel_public_addr: proxy.example.com:{proxy_tunnel_port}

  # The address users reach the web listener at, if not this host's name
  # (e.g. a load balancer or DNS name). Port {proxy_web_port} by default.
  # public_addr: proxy.example.com:{proxy_web_port}

  # TLS key and certificate of the HTTPS listener. Without them the proxy uses a
  # self-signed certificate, which browsers and `tsh` will warn about.
  # https_key_file: /etc/teleport/teleport.key
  # https_cert_file: /etc/teleport/teleport.crt

  # OpenSSH servers that are not registered Teleport nodes but that users may reach through
  # this proxy (`ssh -J`/ProxyCommand, `tsh ssh`): CIDRs, IP addresses or host name patterns
  # (* and ? globs, e.g. "*.db.internal"), each optionally with :port. Empty by default: the
  # proxy then dials only registered nodes the user's roles allow. Whatever is listed, the
  # proxy never dials the auth service's port or its own ports.
  ssh_allowed_hosts: []
  # ssh_allowed_hosts: ["10.1.0.0/16:22", "bastion-*.example.com:22"]

  # In recording proxy mode (auth_service.session_recording: proxy) the proxy checks each
  # node's host certificate against the cluster's host CA and refuses plain host keys; "no"
  # accepts any host key (only for nodes you cannot give a host certificate).
  proxy_checks_host_keys: yes
"""


def sample_config() -> str:
    """A complete, commented teleport.yaml with every default; valid exactly as printed."""
    return _SAMPLE.format(
        config_file=defaults.CONFIG_FILE,
        data_dir=defaults.DATA_DIR,
        auth_port=defaults.AUTH_PORT,
        node_port=defaults.NODE_SSH_PORT,
        proxy_ssh_port=defaults.PROXY_SSH_PORT,
        proxy_web_port=defaults.PROXY_WEB_PORT,
        proxy_tunnel_port=defaults.PROXY_TUNNEL_PORT,
        max_connections=defaults.MAX_CONNECTIONS,
        max_users=defaults.MAX_USERS,
        log_output=defaults.LOG_OUTPUT,
        log_severity=defaults.LOG_SEVERITY,
        storage_type=defaults.STORAGE_TYPE,
        etcd_prefix=defaults.ETCD_PREFIX,
        dynamodb_table=defaults.DYNAMODB_TABLE,
        auth_type=defaults.AUTH_TYPE,
        second_factor=defaults.SECOND_FACTOR,
    )
