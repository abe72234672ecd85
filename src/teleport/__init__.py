"""A certificate-based SSH access platform: auth, proxy and node services, and the tsh/tctl clients."""

__version__ = "0.1.0"
