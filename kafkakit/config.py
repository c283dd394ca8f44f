"""How to reach Kafka: the settings section, the sources every settings class shares, and the
librdkafka properties built from them.

Sources, strongest first: ``CENTINELA_*`` environment variables (nested with ``__``, e.g.
``CENTINELA_KAFKA__SECURITY_PROTOCOL``), then ``KAFKA_BOOTSTRAP_SERVERS`` (the variable every
Kafka tool understands, so one export points the whole project at an existing cluster), then the
optional TOML file given with ``--config``, then the defaults. ``stream.settings.Settings`` (the
detector) and ``replay.settings.ReplaySettings`` read the same names through ``KafkaClientSettings``
and ``load``, so one environment or file configures both.

Importing this module has no side effects. Secrets (``SecretStr`` or a file) are read only when
``kafka_client_config`` builds a client's properties, and never logged.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from detector.errors import ConfigError

ENV_PREFIX = "CENTINELA_"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
LOCAL_BROKER_PORT_ENV = "CENTINELA_KAFKA_PORT"  # the local broker's port (`centinela broker start`)

_toml_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("centinela_toml", default=None)

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def local_bootstrap(environ: Mapping[str, str] | None = None) -> str:
    """``localhost:<CENTINELA_KAFKA_PORT or 9092>``: where `centinela broker start` listens."""
    port = (os.environ if environ is None else environ).get(LOCAL_BROKER_PORT_ENV, "").strip()
    return f"localhost:{port if port.isdigit() else 9092}"


def _default_bootstrap() -> str:
    return local_bootstrap()  # no parameter: pydantic would pass a one-parameter factory the data


class Section(BaseModel):
    """A frozen settings section that refuses unknown keys (a typo names itself at start)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(Section):
    """How to reach the cluster; SASL/SSL settings go to librdkafka unchanged."""

    # Default: the local broker of `centinela broker start` (its port from CENTINELA_KAFKA_PORT, as
    # there), so a second checkout on one machine never talks to the first one's broker by accident.
    bootstrap_servers: str = Field(default_factory=_default_bootstrap, min_length=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # Or a file holding it (a mounted secret, mode 0600): read when the clients are built, never logged.
    sasl_password_file: Path | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    ssl_key_password_file: Path | None = None
    # None keeps librdkafka's default, "https": the broker's certificate must name the host.
    ssl_endpoint_identification_algorithm: str | None = None
    client_id: str = "centinela"
    # Anything else librdkafka understands, e.g. {"socket.keepalive.enable": "true"}.
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for entry in value.split(","):
            address = entry.strip().split("://", 1)[-1]  # a listener name prefix is allowed
            host, _, port = address.rpartition(":")
            if (
                not host
                or not port.isdigit()
                or not 1 <= int(port) <= 65535
                or any(c.isspace() for c in host)
            ):
                raise ValueError(f"{entry.strip()!r} is not host:port (a comma-separated list of them)")
        return value

    @model_validator(mode="after")
    def _one_source_per_secret(self) -> KafkaSettings:
        for name in ("sasl_password", "ssl_key_password"):
            if getattr(self, name) is not None and getattr(self, f"{name}_file") is not None:
                raise ValueError(f"set {name} or {name}_file, not both")
        secret_keys = {"sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret"}
        if secret_keys & set(self.extra):
            raise ValueError("secrets go in their own settings (SecretStr or a file), not in kafka.extra")
        return self


class _BootstrapEnvSource(PydanticBaseSettingsSource):
    """``KAFKA_BOOTSTRAP_SERVERS`` as ``kafka.bootstrap_servers``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ answers for the whole model

    def __call__(self) -> dict[str, Any]:
        value = os.environ.get(BOOTSTRAP_ENV)
        return {"kafka": {"bootstrap_servers": value}} if value else {}


class KafkaClientSettings(BaseSettings):
    """The base of a settings class that reaches Kafka: the ``kafka`` section and the shared sources,
    strongest first (see the module docstring). A subclass sets its own ``extra`` rule."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, case_sensitive=False
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)  # built per load: its default reads the env

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _BootstrapEnvSource(settings_cls),
        ]
        toml_file = _toml_file.get()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


@contextmanager
def _reading_toml(path: Path | None) -> Iterator[None]:
    token = _toml_file.set(path)
    try:
        yield
    finally:
        _toml_file.reset(token)


def _setting_name(location: tuple[int | str, ...]) -> str:
    dotted = ".".join(str(part) for part in location)
    env = ENV_PREFIX + "__".join(str(part) for part in location).upper()
    return f"{dotted} ({env})"


def load(settings_cls: type[SettingsT], config_file: Path | None = None, **overrides: Any) -> SettingsT:
    """Read ``settings_cls`` once from its sources (``config_file``: the ``--config`` TOML file); a
    bad setting raises ``ConfigError`` naming it and its variable (the CLI exits 2)."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"--config {config_file}: no such file")
    try:
        with _reading_toml(config_file):
            return settings_cls(**overrides)
    except ValidationError as error:
        problems = [f"{_setting_name(tuple(item['loc']))}: {item['msg']}" for item in error.errors()]
        raise ConfigError("invalid setting " + "; ".join(problems)) from error
    except (OSError, ValueError) as error:  # an unreadable or malformed TOML file
        raise ConfigError(f"--config {config_file}: {error}") from error


def kafka_client_config(kafka: KafkaSettings) -> dict[str, str]:
    """The librdkafka properties every client (consumer, producer, admin) shares."""
    config: dict[str, str] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
        "client.id": kafka.client_id,
    }
    plain = {
        "sasl.mechanism": kafka.sasl_mechanism,
        "sasl.username": kafka.sasl_username,
        "ssl.ca.location": kafka.ssl_ca_location,
        "ssl.certificate.location": kafka.ssl_certificate_location,
        "ssl.key.location": kafka.ssl_key_location,
        "ssl.endpoint.identification.algorithm": kafka.ssl_endpoint_identification_algorithm,
    }
    secret = {
        "sasl.password": _secret(kafka.sasl_password, kafka.sasl_password_file),
        "ssl.key.password": _secret(kafka.ssl_key_password, kafka.ssl_key_password_file),
    }
    config.update({key: value for key, value in plain.items() if value is not None})
    config.update({key: value for key, value in secret.items() if value is not None})
    config.update(kafka.extra)
    return config


def _secret(value: SecretStr | None, file: Path | None) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if file is None:
        return None
    try:
        return file.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"cannot read the secret file {file}: {error.strerror or error}") from error
