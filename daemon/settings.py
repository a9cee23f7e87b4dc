"""noduled configuration: one TOML file plus ``NODULED_*`` environment overrides.

The section and key names are part of the operator interface (DESIGN §7);
add keys freely, never rename these.  Precedence, highest first:
environment variables (``NODULED_SCP__PORT=11113``, nested delimiter ``__``),
the TOML file (``--config`` or ``NODULED_CONFIG``), the embedded defaults.
Every setting is documented in ``config/noduled.example.toml``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

_AE_TITLE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # AE VR: 16 chars, no backslash, no control chars


class ConfigError(ValueError):
    """The configuration cannot be used; the message names every bad key."""


def _check_ae_title(value: str) -> str:
    stripped = value.strip()
    if not stripped or not _AE_TITLE_RE.match(value) or len(value) > 16:
        raise ValueError(f"must be 1-16 printable ASCII characters without backslash, got {value!r}")
    return stripped


def _bounded(low: float, *, above: bool = False, high: float | None = None, unit: str = "") -> AfterValidator:
    """A range check for a numeric setting, with the message operators see ("must be 0-64, got -1")."""

    def check(value: float) -> float:
        if (value > low if above else value >= low) and (high is None or value <= high):
            return value
        if high is not None:
            expected = f"{low:g}-{high:g}"
        elif above:
            expected = f"more than {low:g}"
        else:
            expected = f"0 or more{unit}" if low == 0 else f"at least {low:g}"
        raise ValueError(f"must be {expected}, got {value}")

    return AfterValidator(check)


Port = Annotated[int, _bounded(1, high=65535)]
AETitle = Annotated[str, AfterValidator(_check_ae_title)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSSettings(_Section):
    enabled: bool = False
    cert: str = ""  # PEM certificate of this node
    key: str = ""  # PEM private key of this node
    ca: str = ""  # PEM CA bundle used to verify peers (client certificates)
    require_client_cert: bool = True

    @model_validator(mode="after")
    def _files_exist_when_enabled(self) -> TLSSettings:
        if self.enabled:
            for name in ("cert", "key"):
                path = getattr(self, name)
                if not path:
                    raise ValueError(f"tls.{name} must be set when tls.enabled = true")
                if not Path(path).is_file():
                    raise ValueError(f"tls.{name} file {path!r} does not exist")
            if self.require_client_cert and not self.ca:
                raise ValueError("tls.ca must be set when tls.require_client_cert = true")
        return self


class Peer(_Section):
    """A DICOM peer allowed to open associations (calling AE title, optional address)."""

    ae_title: AETitle
    host: str | None = None  # IP address; None = any address

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            raise ValueError(f"must be an IP address, got {v!r}") from None


class SCPSettings(_Section):
    ae_title: AETitle = "NODULED"
    port: Port = 11112
    # "" = automatic: 127.0.0.1 while allowed_peers is empty (loopback peers only), else 0.0.0.0
    host: str = ""
    allowed_peers: tuple[Peer, ...] = ()
    tls: TLSSettings = TLSSettings()
    # the longest P-DATA-TF PDU a peer may send (announced in A-ASSOCIATE-AC; a longer one is refused before
    # it is read).  Larger PDUs are a little faster to receive; 0 = no limit (buffers still grow only as data arrive)
    max_pdu_bytes: Annotated[int, _bounded(0)] = 4 * 1024 * 1024
    max_associations: Annotated[int, _bounded(1)] = 16  # admitted associations open at once
    network_timeout_s: Annotated[float, _bounded(0, above=True, unit=" seconds")] = 60.0
    # from connecting to a complete A-ASSOCIATE-RQ (TLS handshake included), however slowly the peer sends
    association_request_timeout_s: Annotated[float, _bounded(0, above=True)] = 10.0
    max_pending_per_address: Annotated[int, _bounded(1)] = 8  # connections without a complete request, per address
    max_pending: Annotated[int, _bounded(1)] = 64  # ... in all; beyond either the oldest pending one is closed

    @property
    def bind_host(self) -> str:
        if self.host:
            return self.host
        return "0.0.0.0" if self.allowed_peers else "127.0.0.1"


class StorageSettings(_Section):
    data_dir: Path = Path("./var")
    min_free_disk_mb: Annotated[int, _bounded(0)] = 1024  # refuse new instances (Out of Resources) below this
    # retention (daemon/storage/retention.py): the CT images of a reported study whose reports were all
    # delivered are deleted this many days after the report (0 = keep them forever); SR, SEG, key images,
    # the index and the longitudinal record stay.
    retention_days: Annotated[float, _bounded(0, unit=" days")] = 30.0
    # when the data_dir's filesystem is fuller than this, the oldest reported-and-delivered studies' images
    # are purged (before their retention is up) until it is below low_water_mark_percent
    high_water_mark_percent: Annotated[float, _bounded(1, high=100)] = 90.0
    low_water_mark_percent: Annotated[float, _bounded(1, high=100)] = 80.0
    purge_interval_s: Annotated[float, _bounded(0, above=True)] = (
        60.0  # how often the disk and the retention are checked
    )

    @model_validator(mode="after")
    def _water_marks(self) -> StorageSettings:
        if self.low_water_mark_percent > self.high_water_mark_percent:
            raise ValueError(
                f"low_water_mark_percent ({self.low_water_mark_percent:g}) must not exceed "
                f"high_water_mark_percent ({self.high_water_mark_percent:g})"
            )
        return self


class DatabaseSettings(_Section):
    url: str = ""  # "" = sqlite file index.sqlite in data_dir

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", v):
            raise ValueError(f"must be empty, sqlite:///PATH or postgresql+psycopg://..., got {v!r}")
        return v


class QueueSettings(_Section):
    redis_url: str = ""  # "" = SqliteHuey in data_dir
    workers: Annotated[int, _bounded(0, high=64)] = 2


class AnalysisSettings(_Section):
    stable_age_s: Annotated[float, _bounded(0, unit=" seconds")] = 10.0  # upper bound: no instance for this long
    # a study is complete this long after the association that carried it was released (if nothing else came)
    release_quiet_s: Annotated[float, _bounded(0, unit=" seconds")] = 2.0
    # on the release, load the CT and segment the seeds while the quiet time runs (serve with workers only)
    preload: bool = True
    # processes measuring a study's seeds in parallel (0 = one per core of the machine, 1 = in the worker)
    processes: Annotated[int, _bounded(0, high=64)] = 0
    require_seeds: bool = True
    lookback_years: Annotated[float, _bounded(0, above=True)] = (
        10.0  # prior CT of the patient compared within this many years
    )
    max_priors: Annotated[int, _bounded(0, above=True)] = (
        4  # the earliest and the most recent priors within the look-back
    )
    # a prior CT whose study description matches is a screening LDCT; any other is pre-screening CT (note 7)
    screening_description_regex: str = r"(?i)screen|ldct|low[ -]?dose|nlcsp|lung ca"
    # the protocol the reports carry; the audit protocol (optional) is computed alongside and recorded, not reported
    protocol: Literal["nlcsp", "lung-rads-2022"] = "nlcsp"
    audit_protocol: Literal["", "nlcsp", "lung-rads-2022"] = ""

    @model_validator(mode="after")
    def _audit_differs(self) -> AnalysisSettings:
        if self.audit_protocol == self.protocol:
            raise ValueError(
                f"audit_protocol must differ from protocol (both {self.protocol!r}); leave it empty for none"
            )
        return self

    @field_validator("screening_description_regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc}), got {v!r}") from None
        return v


class DeliverySettings(_Section):
    """Retries of the outbox (C-STORE of reports to the destinations)."""

    retry_initial_s: Annotated[float, _bounded(0, above=True)] = 30.0  # first retry after this; doubles each attempt
    retry_max_s: Annotated[float, _bounded(0, above=True)] = 3600.0  # ... up to this
    max_age_days: Annotated[float, _bounded(0, above=True)] = (
        7.0  # then the object is reported as expired (never silently dropped)
    )
    # a destination asked for Storage Commitment that has not reported within this time gets the object again
    commitment_timeout_s: Annotated[float, _bounded(0, above=True)] = 300.0
    probe_interval_s: Annotated[float, _bounded(0, above=True)] = 5.0  # C-ECHO every destination this often
    # /healthz fails ("degraded", naming it) for a destination that has not answered C-ECHO for this long
    destination_down_alert_s: Annotated[float, _bounded(0, unit=" seconds")] = 120.0


class ReportSettings(_Section):
    """Extra objects for workstations that cannot show a TID 1500 SR (sent with the SR and SEG)."""

    # a Secondary Capture key-image series: one image per nodule (ruler and values burnt in) + a summary
    key_images: bool = True
    # an Encapsulated PDF of the NLCSP standardised report
    pdf: bool = True


class SiteSettings(_Section):
    family_history_lung_cancer: bool = False
    emphysema: bool = False


class RegistrySettings(_Section):
    """The screening registry: exports and the practice audit (issue 16)."""

    facility_id: str = ""  # the registry's facility identifier (LCSR Facility_ID)
    pseudonym_key: str = ""  # secret of the keyed participant key in exports; required for pseudonymised output
    adherence_tolerance_days: Annotated[int, _bounded(0, unit=" days")] = 60  # a return this late is still adherent
    ctdivol_target_mgy: Annotated[float, _bounded(0, above=True, unit=" mGy")] = 3.0  # standard-size patient
    expected_category_pct: dict[str, tuple[float, float]] = {}  # e.g. {"1" = [70, 90]}: bands drawn in the audit

    @model_validator(mode="before")
    @classmethod
    def _no_protocol(cls, data: Any) -> Any:
        # one setting for one fact: the audit applies the protocol of the reports ([analysis] protocol)
        if isinstance(data, dict) and "protocol" in data:
            raise ValueError(
                "[registry] protocol is no longer a setting: the audit applies [analysis] protocol"
                " (the protocol the exams were reported with); remove the key"
            )
        return data


class Destination(_Section):
    ae_title: AETitle
    host: str
    port: Port
    # Storage Commitment (Push Model) after the C-STORE: true = an object is delivered only when the
    # destination has committed it; "auto" = when the destination accepts the SOP class; false = a C-STORE
    # success delivers.  The destination sends its report to this node's SCP ([scp] ae_title/port): it must
    # know this node (Orthanc: DicomModalities).
    storage_commitment: bool | Literal["auto"] = False

    @field_validator("storage_commitment", mode="before")
    @classmethod
    def _commitment(cls, v: Any) -> Any:
        text = str(v).strip().lower() if isinstance(v, str) else v
        if text in (True, "true"):
            return True
        if text in (False, "false"):
            return False
        if text == "auto":
            return "auto"
        raise ValueError(f'must be true, false or "auto", got {v!r}')

    @property
    def commitment_mode(self) -> Literal["off", "auto", "required"]:
        if self.storage_commitment == "auto":
            return "auto"
        return "required" if self.storage_commitment else "off"


class PACSSettings(Destination):
    retrieve: Literal["c-move", "c-get"] = "c-move"
    # when the PACS cannot give the priors, wait (retrying) rather than report without them;
    # after this many minutes report anyway, and the SR says so (0 = wait indefinitely)
    report_without_priors_after_min: Annotated[float, _bounded(0, unit=" minutes")] = 0.0


class HTTPSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    enabled: bool = True


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class Settings(BaseSettings):
    """All of noduled's settings (DESIGN §7)."""

    model_config = SettingsConfigDict(
        env_prefix="NODULED_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    scp: SCPSettings = SCPSettings()
    storage: StorageSettings = StorageSettings()
    database: DatabaseSettings = DatabaseSettings()
    queue: QueueSettings = QueueSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    site: SiteSettings = SiteSettings()
    destinations: tuple[Destination, ...] = ()
    delivery: DeliverySettings = DeliverySettings()
    report: ReportSettings = ReportSettings()
    pacs: PACSSettings | None = None
    http: HTTPSettings = HTTPSettings()
    logging: LoggingSettings = LoggingSettings()
    registry: RegistrySettings = RegistrySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry the TOML file's content; the environment overrides it.
        return (env_settings, init_settings)

    # --- derived paths -------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir).resolve()

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'index.sqlite'}"


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix) :]
        if err["type"] == "extra_forbidden":
            msg = "is not a known setting (see config/noduled.example.toml)"
        elif err["type"] not in ("value_error",) and "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg}, got {err['input']!r}"
        lines.append(f"{loc} {msg}" if loc else msg)
    return f"invalid configuration ({source}):\n  " + "\n  ".join(lines)


def load_settings(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """Load settings from ``config_path`` (or ``$NODULED_CONFIG``) and the environment.

    Raises :class:`ConfigError` naming each bad key, e.g.
    ``scp.port must be 1-65535, got 70000``.
    """
    path = config_path or os.environ.get("NODULED_CONFIG") or None
    data: dict[str, Any] = {}
    source = "embedded defaults + environment"
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"configuration file {str(p)!r} does not exist")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {str(p)!r} is not valid TOML: {exc}") from None
        source = f"{p} + environment"
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
