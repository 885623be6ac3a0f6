"""The pipeline's settings: ``XANES_NN_*`` environment variables, read and checked by pydantic-settings.

As in maggma and emmet, one :class:`PipelineSettings` model names every variable, its type, its default and its
meaning; :data:`ENV_VARS` (the README's table and the unknown-variable check) is generated from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field, PositiveInt, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pymatgen_xanes_nn.classifier import DEFAULT_MODEL
from pymatgen_xanes_nn.errors import XANESError
from pymatgen_xanes_nn.pipeline.stores import DEFAULT_MONGO_TIMEOUT_MS

PREFIX = "XANES_NN_"
#: The pipeline's stages, in run order; each is named after the collection it writes.
STAGES = ("spectra", "materials", "classifications", "material_classifications")


class ConfigurationError(XANESError):
    """A setting of the pipeline is wrong; raised before any building starts."""


class PipelineSettings(BaseSettings):
    """Where the builders read and write, and how (each field is the variable ``XANES_NN_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, case_sensitive=False, extra="forbid", frozen=True)

    mongo_uri: str | None = Field(None, description="MongoDB URI (unset: the embedded default)")
    tasks_db: str = Field("feff", description="database of the FEFF task documents (default 'feff', as atomate's "
                                              "FeffCalcDb)")
    tasks_collection: str = Field("tasks", description="collection of the FEFF task documents (default 'tasks')")
    db: str = Field("xanes_nn", description="database the builders write to (default 'xanes_nn')")
    model: str = Field(DEFAULT_MODEL, description=f"pretrained model name or model file (default {DEFAULT_MODEL!r})")
    output: str = Field("xanes_nn_output", description="folder of the embedded default's JSON collections (default "
                                                       "'xanes_nn_output')")
    tasks_file: str | None = Field(None, description="packed task documents of the embedded default (default: the "
                                                     "shipped dataset)")
    exhaustive: bool = Field(True, description="'1' (default) compares every document; '0': only documents newer "
                                               "than the newest built one, plus undated ones")
    mongo_timeout_ms: PositiveInt = Field(
        DEFAULT_MONGO_TIMEOUT_MS,
        description=f"how long to wait for MongoDB to answer before failing (default {DEFAULT_MONGO_TIMEOUT_MS})")
    stages: Annotated[tuple[str, ...], NoDecode] = Field(
        STAGES, description="comma-separated stages to build, in pipeline order (default all: " + ",".join(STAGES)
                            + "); maggma's distributed manager serves one stage per run")

    @field_validator("stages", mode="before")
    @classmethod
    def _split_stages(cls, value):
        if isinstance(value, str):
            value = tuple(s.strip() for s in value.split(",") if s.strip())
        if not value or any(s not in STAGES for s in value):
            raise ValueError(f"use some of {', '.join(STAGES)}")
        return tuple(value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PipelineSettings:
        """The settings of ``env`` (default: the process environment).

        Raises:
            ConfigurationError: naming the variable, the value given and what it must be; also for a variable
                with the prefix that names no setting (a misspelt one would otherwise be ignored).
        """
        import os

        from_process = env is None
        env = dict(os.environ if env is None else env)
        unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in ENV_VARS)
        if unknown:
            raise ConfigurationError(f"Unknown setting(s) {', '.join(unknown)}; known: {', '.join(ENV_VARS)}")
        given = {k[len(PREFIX):].lower(): v for k, v in env.items() if k in ENV_VARS}
        try:
            if from_process:
                return cls()  # pydantic-settings reads the variables
            # every field given: init values win, so the process environment cannot leak into an explicit env
            return cls(**{name: given.get(name, field.default) for name, field in cls.model_fields.items()})
        except ValidationError as exc:
            err = exc.errors()[0]
            name = f"{PREFIX}{str(err['loc'][0]).upper()}"
            raise ConfigurationError(f"{name}={env.get(name)!r}: {err['msg'].removeprefix('Value error, ')}") \
                from None


#: Environment variables read by the pipeline, with their meaning (generated from :class:`PipelineSettings`).
ENV_VARS: dict[str, str] = {f"{PREFIX}{name.upper()}": field.description or ""
                            for name, field in PipelineSettings.model_fields.items()}
