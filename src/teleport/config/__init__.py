"""teleport.yaml: typed model, strict file loading, `teleport start` flags, sample file. Pure."""

from teleport.config.addr import HostPort, parse_host_port
from teleport.config.fileconf import default_config, load_config_file, parse_config_text
from teleport.config.labels import parse_labels_flag
from teleport.config.model import (
    AuthServiceConfig,
    CommandLabel,
    FileConfig,
    GlobalConfig,
    ProxyServiceConfig,
    SSHServiceConfig,
    StaticToken,
)
from teleport.config.sample import sample_config
from teleport.config.start import apply_start_flags, effective_auth_servers

__all__ = [
    "AuthServiceConfig",
    "CommandLabel",
    "FileConfig",
    "GlobalConfig",
    "HostPort",
    "ProxyServiceConfig",
    "SSHServiceConfig",
    "StaticToken",
    "apply_start_flags",
    "default_config",
    "effective_auth_servers",
    "load_config_file",
    "parse_config_text",
    "parse_host_port",
    "parse_labels_flag",
    "sample_config",
]
