"""AWS clients for the DynamoDB backend, the DynamoDB audit log and the S3 recording store.

Every call goes through the AWS SDK (boto3/botocore): requests are signed by the SDK, never here.
boto3 is synchronous, so the stores run its calls in their own small thread pools; a boto3
client is thread-safe. Credentials are the ones in teleport.yaml when given, else the SDK's
default chain (environment, shared config, instance or task role), as AWS users expect.

Secrets never reach a log: the settings' repr hides the keys, and botocore's own loggers (which
print request headers at DEBUG) are held at WARNING whatever teleport's log level is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from teleport import defaults
from teleport.errors import ConfigError, ConnectionProblem

log = logging.getLogger(__name__)

# botocore logs signed request headers at DEBUG; teleport -d must not put them in its log.
for _name in ("botocore", "boto3", "s3transfer", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class AWSSettings:
    """Where and as whom to reach AWS (or an AWS-compatible server such as moto or MinIO)."""

    region: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    # which teleport.yaml key holds these settings, for error messages
    source: str = "teleport.storage"

    @classmethod
    def from_storage(cls, storage: dict[str, Any], source: str = "teleport.storage") -> AWSSettings:
        """The AWS keys of a ``teleport.storage`` section (validated by the config layer)."""

        def opt(key: str) -> str | None:
            value = storage.get(key)
            return str(value) if value else None

        return cls(opt("region"), opt("access_key"), opt("secret_key"), opt("endpoint"), source)

    def client(self, service: str) -> Any:
        """A boto3 client for service; ConfigError when no region can be found."""
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )
        if not session.region_name:
            raise ConfigError(
                f"{self.source}.region: no AWS region: set region (e.g. eu-west-1) or the "
                "AWS_REGION environment variable"
            )
        config = Config(
            connect_timeout=defaults.AWS_CONNECT_TIMEOUT,
            read_timeout=defaults.AWS_READ_TIMEOUT,
            retries={"max_attempts": defaults.AWS_MAX_ATTEMPTS, "mode": "standard"},
            max_pool_connections=16,
        )
        return session.client(service, endpoint_url=self.endpoint or None, config=config)

    def where(self) -> str:
        """The region and endpoint, for messages (never the keys)."""
        text = f"region {self.region or '(from the environment)'}"
        if self.endpoint:
            text += f", endpoint {self.endpoint}"
        return text


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def connection_problem(what: str, exc: BaseException) -> ConnectionProblem:
    """One message for an AWS call that failed: what was tried and the SDK's reason (which
    never contains the secret key)."""
    code = error_code(exc)
    if code:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
        reason = f"{code}: {message}" if message else code
    else:
        reason = f"{type(exc).__name__}: {exc}"
    hint = ""
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        hint = (
            " (set access_key and secret_key in teleport.yaml, or give this host AWS credentials: "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an instance role)"
        )
    elif code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
                  "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        hint = " (check the credentials and the IAM policy)"
    return ConnectionProblem(f"{what} failed: {reason}{hint}")


def ensure_table(client: Any, table: str, key_schema: list[dict[str, str]],
                 attributes: list[dict[str, str]], what: str, key_hint: str,
                 indexes: list[dict[str, Any]] | None = None, ttl_attribute: str = "TTL") -> None:
    """Create the table (on-demand billing, TTL on ttl_attribute) unless it exists; refuse a
    table of another key schema, which is some other application's data."""
    try:
        desc = client.describe_table(TableName=table)["Table"]
    except Exception as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise connection_problem(f"reading {what}", exc) from None
        desc = None
    if desc is None:
        kw: dict[str, Any] = {
            "TableName": table,
            "KeySchema": key_schema,
            "AttributeDefinitions": attributes,
            "BillingMode": "PAY_PER_REQUEST",
        }
        if indexes:
            kw["GlobalSecondaryIndexes"] = indexes
        try:
            client.create_table(**kw)
        except Exception as exc:
            if error_code(exc) != "ResourceInUseException":  # another auth server was faster
                raise connection_problem(f"creating {what}", exc) from None
        try:
            client.get_waiter("table_exists").wait(
                TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
            client.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
            )
        except Exception as exc:
            if error_code(exc) != "ValidationException":  # TTL already enabled by another server
                raise connection_problem(f"setting up {what}", exc) from None
        log.info("created %s", what)
        return
    schema = sorted((k["AttributeName"], k["KeyType"]) for k in desc.get("KeySchema", []))
    if schema != sorted((k["AttributeName"], k["KeyType"]) for k in key_schema):
        raise ConfigError(
            f"{key_hint}: {what} exists but is not a teleport table (its key schema is "
            f"{schema}); name another table"
        )
