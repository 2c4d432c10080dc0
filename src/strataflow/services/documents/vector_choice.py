"""Which of a document's vectors a read returns: `return_vectors` and `return_vector_names`.

`return_vectors=true` returns every vector array. `return_vector_names=true` returns only
`_vectors`, the names of the vectors the document holds (a cheap way to see what is there);
a list of names returns those arrays. Arrays are top-level fields named by their storage name,
as `return_vectors` shows them; a name may be given as the storage name or the collection's
output name (`text_extractor_v1_embedding` or `embedding`). The query string spells the list
comma-separated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strataflow.errors import BadRequestError
from strataflow.store.tables import Collection


@dataclass(frozen=True)
class VectorChoice:
    """`arrays`: storage names whose arrays are shown, None for all of them; `names`: show `_vectors`."""

    arrays: frozenset[str] | None = frozenset()
    names: bool = False

    @property
    def load(self) -> bool:
        """Whether the read must fetch vector columns at all."""
        return self.arrays is None or bool(self.arrays) or self.names

    def shows(self, name: str) -> bool:
        return self.arrays is None or name in self.arrays


NO_VECTORS = VectorChoice()
ALL_VECTORS = VectorChoice(arrays=None)


def _names_by_alias(collection: Collection) -> dict[str, str]:
    """Output and storage name → storage name, for every vector the collection holds."""
    aliases: dict[str, str] = {}
    for definition in collection.vector_indexes or []:
        storage = definition["index"]["name"]
        aliases[storage] = storage
        if definition.get("name"):
            aliases.setdefault(definition["name"], storage)
    return aliases


def _as_names(value: bool | list[str] | str | None) -> bool | list[str] | None:
    """The query string's spelling ('true', 'false', 'a,b') as the body's (a bool or a list)."""
    if not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "false", ""):
        return lowered == "true"
    return [part.strip() for part in value.split(",") if part.strip()]


def vector_choice(collection: Collection, return_vectors: bool, return_vector_names: Any = None) -> VectorChoice:
    """What the read asks for; an unknown vector name is a 400 that lists the collection's names."""
    names = _as_names(return_vector_names)
    if names is not None and not isinstance(names, (bool, list)):
        raise BadRequestError("return_vector_names must be true, false or a list of vector names")
    if return_vectors:
        return VectorChoice(arrays=None, names=names is not None and names is not False)
    if not names:
        return NO_VECTORS
    if names is True:
        return VectorChoice(names=True)
    aliases = _names_by_alias(collection)
    unknown = sorted({str(n) for n in names if n not in aliases})
    if unknown:
        raise BadRequestError(
            f"Unknown vector name(s) {', '.join(unknown)} in collection {collection.collection_id}",
            {"unknown": unknown, "vector_names": sorted(aliases)},
        )
    return VectorChoice(arrays=frozenset(aliases[n] for n in names), names=True)


def vector_fields(vectors: dict[str, Any], choice: VectorChoice) -> dict[str, Any]:
    """The fields a document view gains: the chosen arrays, `_vectors`, and `vector_hydration_incomplete`."""
    if not choice.load:
        return {}
    held = {name: vector for name, vector in vectors.items() if vector is not None}
    fields: dict[str, Any] = {name: vector for name, vector in held.items() if choice.shows(name)}
    if choice.names:
        fields["_vectors"] = sorted(held)
    # Every vector lives in the same LanceDB row as the document: a read that asked for vectors
    # has them all, so hydration is never partial here (the field is the SDK's way to say so).
    fields["vector_hydration_incomplete"] = False
    return fields
