"""Which bucket property each kind of file goes to.

An existing bucket names its properties as it likes (`content`, `picture`, …): files of a kind go
to the bucket's one property of that type, or to the one `--property KIND=NAME` chooses. Every
question is settled here, before a byte is uploaded: several candidates and no choice is an
error; no candidate means the kind's files are skipped, with the reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strataflow.cli.client import ApiError
from strataflow.cli.file_kinds import METADATA_PROPERTIES, SUFFIXES

KINDS = tuple(SUFFIXES)  # text, image, video, audio, pdf


@dataclass(frozen=True)
class PropertyMap:
    targets: dict[str, str] = field(default_factory=dict)  # kind -> the property its files go to
    missing: dict[str, str] = field(default_factory=dict)  # kind -> why its files are skipped


def parse_choices(values: list[str] | None) -> dict[str, str]:
    """`--property KIND=NAME` options as {kind: property name}; a malformed one is an error."""
    choices: dict[str, str] = {}
    for value in values or []:
        kind, sep, name = value.partition("=")
        kind, name = kind.strip().lower(), name.strip()
        if not sep or not kind or not name:
            raise ApiError(f"--property {value!r}: expected KIND=NAME, e.g. --property text=body")
        if kind not in KINDS:
            raise ApiError(f"--property {value!r}: unknown kind '{kind}' (one of {', '.join(KINDS)})")
        if choices.get(kind, name) != name:
            raise ApiError(f"--property names two properties for {kind} files: {choices[kind]} and {name}")
        choices[kind] = name
    return choices


def new_bucket_targets(kinds: set[str], choices: dict[str, str]) -> dict[str, str]:
    """The properties of a bucket ingest creates: named after their kind unless chosen."""
    targets = {kind: choices.get(kind, kind) for kind in sorted(kinds)}
    names = list(targets.values())
    for kind, name in targets.items():
        if name in METADATA_PROPERTIES:
            raise ApiError(
                f"--property {kind}={name}: '{name}' holds each file's {name} in the objects "
                f"ingest creates; choose another name"
            )
        if names.count(name) > 1:
            raise ApiError(f"--property: '{name}' cannot hold two kinds of file")
    return targets


def map_properties(bucket_name: str, schema: dict[str, Any], kinds: set[str], choices: dict[str, str]) -> PropertyMap:
    """Match each kind among the files to a property of an existing bucket."""
    properties: dict[str, Any] = schema.get("properties") or {}
    for kind, name in choices.items():  # checked even without files of the kind: a typo must not pass
        declared = (properties.get(name) or {}).get("type")
        if declared is None:
            raise ApiError(
                f"--property {kind}={name}: bucket '{bucket_name}' has no property '{name}' ({_describe(properties)})"
            )
        if declared != kind:
            raise ApiError(
                f"--property {kind}={name}: property '{name}' of bucket '{bucket_name}' holds {declared}, not {kind}"
            )
    targets: dict[str, str] = {}
    missing: dict[str, str] = {}
    ambiguous: list[str] = []
    for kind in sorted(kinds):
        candidates = sorted(n for n, f in properties.items() if f.get("type") == kind)
        if kind in choices:
            targets[kind] = choices[kind]
        elif len(candidates) == 1:
            targets[kind] = candidates[0]
        elif not candidates:
            missing[kind] = f"bucket '{bucket_name}' has no {kind} property ({_describe(properties)})"
        else:
            ambiguous.append(
                f"{kind} files could go to {' or '.join(candidates)} (choose with --property {kind}={candidates[0]})"
            )
    if ambiguous:
        raise ApiError(
            f"bucket '{bucket_name}' has several properties for one kind: {'; '.join(ambiguous)}. Nothing was uploaded."
        )
    return PropertyMap(targets, missing)


def _describe(properties: dict[str, Any]) -> str:
    files = [f"{name} ({f.get('type')})" for name, f in sorted(properties.items()) if f.get("type") in KINDS]
    return f"its file properties: {', '.join(files)}" if files else "it has no file properties"
