"""Config text → data, bounded: a config file cannot exhaust memory or hide a traceback.

YAML aliases are refused (``*ref`` nested under typed keys expands a small file into gigabytes
before validation sees it: an alias bomb), the text is capped in size, and deep nesting is an error.
Syntax errors and non-UTF-8 files are ``ConfigError``s that name the place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from damo.config.base import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a config file is a few KiB; anything near this is not one


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without aliases (see the module docstring)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"line {event.start_mark.line + 1}: YAML alias *{event.anchor} refused "
                              "(aliases are not allowed in damo configs; write the value out)")
        return super().compose_node(parent, index)


def parse_yaml(text: str, where: str) -> Any:
    """``text`` parsed as YAML with no aliases, bounded in size and depth; ConfigError naming ``where``."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: {len(text)} characters, more than a config can be ({MAX_CONFIG_BYTES})")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a config") from None


def read_config_file(path: Path) -> str:
    """The file's text; ConfigError (not a traceback) when it is unreadable or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot be read ({err.strerror})") from None
