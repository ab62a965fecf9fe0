"""Reading configuration files that become documents: YAML in, one-line errors out.

Shared by the local runner's configuration (``pipeline/settings.py``) and the
LLM traders' (``strategies/llm/config.py``), so a problem reads the same
everywhere: ``{file}: [line N] what is wrong`` or ``{file}: {field}: {reason}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

#: The exception class a caller wants its configuration problems raised as.
E = TypeVar("E", bound=Exception)


def read_yaml(path: Path, error: type[Exception]) -> Any:
    """Parse a YAML file.

    Raises:
        ``error``: the file is missing or is not valid YAML (with the line when known).
    """
    if not path.is_file():
        raise error(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise error(f"{path}:{where} malformed YAML: {getattr(exc, 'problem', exc)}") from exc


def first_error(where: Path | str, exc: ValidationError, error: type[E]) -> E:
    """The first validation problem as ``error("{where}: {field}: {reason} (+N more)")``."""
    e = exc.errors()[0]
    loc = ".".join(str(x) for x in e["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return error(f"{where}: {loc}: {e['msg']}{more}")
