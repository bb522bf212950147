"""The base of every config section, and the config's error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from damo.errors import DamoError


class ConfigError(DamoError, ValueError):
    """A config file or override is invalid; the message names the key and the file."""


class Section(BaseModel):
    """Base of every section: unknown keys are refused, assignments re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
