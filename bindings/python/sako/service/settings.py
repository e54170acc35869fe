"""The service's configuration: one :class:`Settings` object read from, in order of
precedence, the command line (``sako serve --flag``), keyword arguments, ``SAKO_*``
environment variables and the field defaults. docs/service.md lists every field; a test
compares that table with this class."""
from __future__ import annotations

import argparse
import os
from typing import Annotated, Any, List, Literal, Optional, Sequence

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, CliSettingsSource, NoDecode, SettingsConfigDict

from .keys import KeyRing, read_keys_file

DEFAULT_DB = os.path.join("var", "sako.db")
MAX_BODY_BYTES = 4 * 1024 * 1024

# SecretStr keeps keys out of reprs and logs. NoDecode: the environment gives them
# comma-separated, not as JSON.
_Keys = Annotated[List[SecretStr], NoDecode]


class ServeFlags(BaseSettings):
    """The fields of :class:`Settings` that are also ``sako serve`` flags (all but the
    keys, which a command line would show in ``ps``)."""

    model_config = SettingsConfigDict(env_prefix="SAKO_", extra="forbid", cli_kebab_case=True,
                                      cli_implicit_flags=True, cli_prog_name="sako serve")

    db: str = Field(DEFAULT_DB, description="database file; created if absent and seeded "
                                           "with the demo catalog unless --no-demo")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    dev: bool = Field(False, description="allow running with no API key "
                                         "(every request is then admin)")
    keys_file: Optional[str] = Field(None, description="file of 'client:KEY' / 'admin:KEY' lines")
    demo: bool = Field(True, description="seed a new database with the demo catalog")
    durability: Literal["full", "normal", "off"] = Field("full", description="engine durability")
    seed: Optional[int] = Field(None, description="RNG seed; null = from the clock")
    recommend_in: Literal["auto", "loop", "threadpool"] = Field(
        "auto", description="where recommend runs: on the event loop, in the threadpool, or "
                            "chosen from its measured cost")
    max_body_bytes: int = Field(MAX_BODY_BYTES, ge=1, description="largest request body, bytes")
    metrics: bool = Field(True, description="serve GET /metrics and count requests")
    log_level: str = Field("info", description="log level of sako and uvicorn")
    access_log: bool = Field(False, description="log every request")
    auto_retrain: bool = Field(True, description="run the retrains the engine's retrain policy "
                                                 "says are due, in the background")
    policy_check_seconds: float = Field(5.0, gt=0, le=86400,
                                        description="how often the background task asks "
                                                    "whether a retrain is due, seconds")
    auto_compact: bool = Field(True, description="compact the event log after each successful "
                                                 "background retrain (sako_compact), so that "
                                                 "the file stops growing under steady traffic")
    compact_keep_days: float = Field(30.0, ge=0.0, le=1e6,
                                     description="auto compaction: days of event time kept in "
                                                 "the log (0: no time window)")
    compact_keep_events: int = Field(100_000, ge=0, le=(1 << 53) - 1,
                                     description="auto compaction: latest events kept at least "
                                                 "(raised to 10,000 and to the policy's "
                                                 "gate_holdout_events)")
    backup_dir: Optional[str] = Field(None, description="directory of POST /v1/backup's files; "
                                                        "null = 'backups' beside the database")
    replicate: Optional[str] = Field(None, description="replicated mode: NATS URLs "
                                                       "(nats://host:port, comma-separated); the "
                                                       "engine follows the JetStream log and "
                                                       "writes go through it")
    replicate_stream: str = Field("SAKO", description="replicated mode: the JetStream stream "
                                                      "(subject sako.log)")
    replicate_replicas: int = Field(0, ge=0, le=5, description="replicated mode: copies of the "
                                                               "stream (0: the number of URLs)")
    replicate_max_lag: int = Field(1000, ge=0, description="replicated mode: GET /readyz answers "
                                                           "503 while the replica is more entries "
                                                           "behind the stream than this")
    replicate_wait_seconds: float = Field(2.0, ge=0, le=60,
                                          description="replicated mode: how long a write waits "
                                                      "for the local replica to apply it")
    workers: int = Field(1, ge=1, le=64, description="processes serving the port (with "
                                                     "--replicate): worker i has its own replica "
                                                     "file, the --db path with -i before its suffix")


class Settings(ServeFlags):
    """Configuration of ``sako serve`` and :func:`sako.service.create_app`.

    Every field ``name`` is read from the environment variable ``SAKO_NAME`` and, except
    the keys, from the ``sako serve`` flag ``--name`` (underscores become dashes).
    """

    client_keys: _Keys = Field(default_factory=list, description="client keys, comma-separated")
    admin_keys: _Keys = Field(default_factory=list, description="admin keys, comma-separated")

    @field_validator("client_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [k.strip() for k in v.split(",") if k.strip()]
        return v

    def keyring(self) -> KeyRing:
        """The keys of ``client_keys``, ``admin_keys`` and ``keys_file`` together.

        Raises
        ------
        OSError, ValueError
            The keys file cannot be read or has a malformed line.
        """
        client = [k.get_secret_value() for k in self.client_keys]
        admin = [k.get_secret_value() for k in self.admin_keys]
        if self.keys_file:
            file_client, file_admin = read_keys_file(self.keys_file)
            client += file_client
            admin += file_admin
        return KeyRing(client, admin)

    def engine_options(self) -> dict:
        """Options for :class:`sako.Engine` (the C defaults for everything else)."""
        opts: dict = {"durability": self.durability}
        if self.seed is not None:
            opts["seed"] = self.seed
        return opts

    def backup_directory(self) -> str:
        """Where ``POST /v1/backup`` writes: ``backup_dir``, else ``backups`` beside the
        database file (beside the working directory for an in-memory database)."""
        if self.backup_dir:
            return self.backup_dir
        base = "" if self.db == ":memory:" else os.path.dirname(os.path.abspath(self.db))
        return os.path.join(base, "backups")

    @property
    def inline_recommend(self) -> Optional[bool]:
        return {"auto": None, "loop": True, "threadpool": False}[self.recommend_in]


def add_arguments(parser: argparse.ArgumentParser) -> CliSettingsSource:
    """Add the flags of :class:`Settings` to ``parser`` (the ``sako serve`` subcommand);
    pass the returned source to :func:`from_args` with the parsed namespace."""
    return CliSettingsSource(ServeFlags, root_parser=parser)


def from_args(source: CliSettingsSource, args: argparse.Namespace) -> Settings:
    """Settings from parsed flags over the environment."""
    return Settings(_cli_settings_source=source(parsed_args=args))  # type: ignore[call-arg]


def parse(argv: Sequence[str]) -> Settings:
    """Settings from ``sako serve`` arguments (without the subcommand) and the environment."""
    parser = argparse.ArgumentParser(prog="sako serve")
    source = add_arguments(parser)
    return from_args(source, parser.parse_args(list(argv)))
