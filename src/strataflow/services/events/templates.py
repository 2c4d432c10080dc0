"""Payload templates: a JSON object whose strings are Jinja2 templates, rendered in a sandbox.

The sandbox (jinja2.sandbox) refuses attribute access to internals; on top of it, string and
list repetition and powers are capped, so a template can neither read the server nor make it
build a gigabyte string. A template is compiled and trial-rendered when the webhook is saved:
one that does not parse or render is refused then, not at its first delivery.
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateError, Undefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from strataflow.errors import BadRequestError

MAX_TEMPLATE_BYTES = 64 * 1024  # the whole template, as JSON
MAX_RENDERED_CHARS = 256 * 1024  # one rendered string
MAX_DEPTH = 16


class TemplateFailed(Exception):
    """A template that cannot render this event (recorded as the delivery's failure)."""


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("powers above 64 are not allowed in a template")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > MAX_RENDERED_CHARS
                ):
                    raise SecurityError("a repetition that large is not allowed in a template")
        return super().call_binop(context, operator, left, right)


def _environment(undefined: type[Undefined]) -> _Sandbox:
    env = _Sandbox(undefined=undefined, autoescape=False)
    env.filters["tojson"] = lambda value: json.dumps(value, default=str)
    return env


_STRICT = _environment(StrictUndefined)
_LENIENT = _environment(ChainableUndefined)  # the trial render: a sample event lacks per-type fields

SAMPLE_EVENT: dict[str, Any] = {
    "event_id": "evt_sample",
    "event_type": "object.created",
    "created_at": "2026-01-01T00:00:00Z",
    "namespace_id": "ns_sample",
    "resource_type": "object",
    "resource_id": "obj_sample",
    "operation": "insert",
    "payload": {},
}


def validate(template: dict[str, Any]) -> None:
    """Refuse (400) a template that is too big, too deep, does not parse or cannot render."""
    try:
        size = len(json.dumps(template))
    except (TypeError, ValueError) as exc:
        raise BadRequestError(f"payload_template is not JSON: {exc}") from None
    if size > MAX_TEMPLATE_BYTES:
        raise BadRequestError(f"payload_template is larger than {MAX_TEMPLATE_BYTES} bytes", {"size": size})
    try:
        _render(_LENIENT, template, SAMPLE_EVENT, 0)
    except TemplateFailed as exc:
        raise BadRequestError(f"payload_template does not render: {exc}", {"payload_template": "invalid"}) from None


def render(template: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The payload for one event; raises TemplateFailed (a name the event lacks, a refused operation)."""
    rendered = _render(_STRICT, template, event, 0)
    assert isinstance(rendered, dict)
    return rendered


def _render(env: _Sandbox, value: Any, event: dict[str, Any], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TemplateFailed(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {str(k): _render(env, v, event, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(env, v, event, depth + 1) for v in value]
    if not isinstance(value, str) or ("{" not in value):
        return value
    try:
        out = env.from_string(value).render(event=event, **event)
    except (TemplateError, SecurityError, ArithmeticError, TypeError, ValueError, OverflowError) as exc:
        raise TemplateFailed(f"{type(exc).__name__}: {exc}") from None
    if len(out) > MAX_RENDERED_CHARS:
        raise TemplateFailed(f"a rendered value is longer than {MAX_RENDERED_CHARS} characters")
    return out
