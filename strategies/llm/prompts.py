"""Prompt templates: Jinja2 files that must carry the configured ``Version:``, rendering and digests.

Every template (and every template it extends or includes) begins with a
Jinja comment naming its version, on the first line::

    {# Version: 1 #}

The loader refuses a template without that header, or whose version is not
the configured ``prompt_schema_version``, with a message naming the file and
both versions, so an old template never silently takes effect.

Digests (hex sha256): :func:`prompt_digest` over the rendered system and user
prompts; :func:`request_digest` over that, the model and its parameters - the
key of the digest cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jinja2
import jinja2.meta

from strategies.llm.config import ModelSpec, TraderSpec

HEADER = re.compile(r"^\{#-?\s*Version:\s*(?P<v>[A-Za-z0-9_.\-]+)\s*-?#\}")
_envs: dict[tuple[str, str], jinja2.Environment] = {}
_envs_lock = threading.Lock()


class TemplateError(ValueError):
    """A template is missing, has no ``Version:`` header, the wrong version, or does not render."""


def header_version(source: str) -> str | None:
    """The version in a template's first-line header, or None when there is none."""
    m = HEADER.match(source.lstrip("\ufeff"))
    return m["v"] if m else None


class VersionedLoader(jinja2.FileSystemLoader):
    """A file loader that refuses templates whose ``Version:`` header is not ``version``."""

    def __init__(self, searchpath: str | Path, version: str) -> None:
        super().__init__(str(searchpath))
        self.version = version

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        """Jinja's hook; raises :class:`TemplateError` on a missing or mismatched header."""
        source, filename, uptodate = super().get_source(environment, template)
        found = header_version(source)
        if found is None:
            raise TemplateError(f"template {filename} has no version header: its first line must be "
                                f"'{{# Version: {self.version} #}}'; refusing to load it")
        if found != self.version:
            raise TemplateError(f"template {filename} is version {found}, but prompt_schema_version is "
                                f"{self.version}: refusing to load it")
        return source, filename, uptodate


def num(x: Any, digits: int = 6) -> str:
    """A number for a prompt: ``n/a`` for None/NaN, 2 decimals from 1000 up, else ``digits`` significant."""
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:.2f}"
    return f"{v:.{digits}g}"


def nums(xs: Any, digits: int = 6) -> str:
    """A series as ``[a, b, c]`` with :func:`num` (memoized by value: the traders of one run show the same series)."""
    try:
        return _nums(tuple(xs), digits)
    except TypeError:  # an unhashable value in the series
        return "[" + ", ".join(num(x, digits) for x in xs) + "]"


@functools.lru_cache(maxsize=4096)
def _nums(xs: tuple, digits: int) -> str:
    return "[" + ", ".join(num(x, digits) for x in xs) + "]"


def environment(prompts_dir: Path, version: str) -> jinja2.Environment:
    """The (cached) Jinja2 environment for one folder and schema version. Undefined names raise."""
    key = (str(prompts_dir), version)
    with _envs_lock:
        env = _envs.get(key)
        if env is None:
            env = jinja2.Environment(loader=VersionedLoader(prompts_dir, version), undefined=jinja2.StrictUndefined,
                                     autoescape=False, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=False)
            env.filters["num"] = num
            env.filters["nums"] = nums
            env.filters["pct"] = lambda x, d=2: "n/a" if x is None else f"{float(x) * 100:.{d}f}"
            _envs[key] = env
    return env


def _template(spec: TraderSpec, name: str) -> jinja2.Template:
    try:
        return environment(spec.templates_dir, spec.prompt_schema_version).get_template(name)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name!r} not found in {spec.templates_dir}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {exc.filename or name} line {exc.lineno}: {exc.message}") from exc


def check_templates(spec: TraderSpec) -> None:
    """Load the trader's system and user templates and every template they extend, include or import.

    Raises:
        TemplateError: a missing file, a syntax error, or a ``Version:`` mismatch.
    """
    env = environment(spec.templates_dir, spec.prompt_schema_version)
    loader = env.loader
    if loader is None:  # environment() always gives one; this narrows the type
        raise TemplateError(f"no template loader for {spec.templates_dir}")
    todo, seen = [spec.prompt_template, spec.user_template], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        _template(spec, name)
        source = loader.get_source(env, name)[0]
        todo += [n for n in jinja2.meta.find_referenced_templates(env.parse(source)) if n]


@dataclass(frozen=True)
class RenderedPrompt:
    """The two messages sent to a model and their digest."""

    system: str
    user: str
    digest: str
    version: str
    templates: dict[str, str]


def render(spec: TraderSpec, system_vars: dict[str, Any], user_vars: dict[str, Any]) -> RenderedPrompt:
    """Render the trader's system and user templates.

    Raises:
        TemplateError: the templates cannot be loaded (see :func:`check_templates`) or a
            variable they use is missing.
    """
    try:
        system = _template(spec, spec.prompt_template).render(**system_vars).strip()
        user = _template(spec, spec.user_template).render(**user_vars).strip()
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"rendering {spec.prompt_template}/{spec.user_template}: {exc.message}") from exc
    return RenderedPrompt(system, user, prompt_digest(system, user), spec.prompt_schema_version,
                          {"system": spec.prompt_template, "user": spec.user_template})


def prompt_digest(system: str, user: str) -> str:
    """sha256 (hex) of the rendered system and user prompts."""
    return hashlib.sha256(json.dumps([system, user], ensure_ascii=False).encode("utf-8")).hexdigest()


def request_digest(prompt: str, model: ModelSpec, response_format: str, schema_version: str) -> str:
    """sha256 (hex) over the prompt digest, the model name and parameters (not the endpoint): the cache key."""
    payload = {"prompt": prompt, "model": model.model, "temperature": model.temperature,
               "max_tokens": model.max_tokens, "response_format": response_format, "schema": schema_version}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()
