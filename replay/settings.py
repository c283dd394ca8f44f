"""What a replay needs to know of the settings: how to reach Kafka and the readings topic.

The same sources and names as the detector's settings (``kafkakit.config``): ``CENTINELA_KAFKA__*``,
``KAFKA_BOOTSTRAP_SERVERS``, ``CENTINELA_TOPICS__READINGS`` and the ``[kafka]`` and ``[topics]``
tables of a ``--config`` file, so one environment or file configures both. The Kafka section is
checked as strictly as the detector checks it; the detector's other settings (its other topics,
``group_id`` and the rest) may sit in the same file or environment and are left to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from kafkakit.config import KafkaClientSettings, load


class ReplayTopics(BaseModel):
    """The readings topic; the detector's other topics in the same table are not replay's."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    readings: str = Field(default="centinela.readings", min_length=1)


class ReplaySettings(KafkaClientSettings):
    """The Kafka connection and the readings topic of ``centinela replay``."""

    model_config = SettingsConfigDict(extra="ignore")

    topics: ReplayTopics = ReplayTopics()


def load_replay_settings(config_file: Path | None = None, **overrides: Any) -> ReplaySettings:
    """Read the settings once; a bad one raises ``ConfigError`` naming it (the CLI exits 2)."""
    return load(ReplaySettings, config_file, **overrides)
