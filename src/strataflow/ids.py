"""Identifier formats: a prefix and a URL-safe, lower-case random token."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits

# Prefix and token length for every entity the API exposes.
ID_FORMATS: dict[str, tuple[str, int]] = {
    "organization": ("org_", 16),
    "internal": ("int_", 24),
    "api_key": ("key_", 12),
    "namespace": ("ns_", 13),
    "bucket": ("bkt_", 12),
    "object": ("obj_", 16),
    "blob": ("blob_", 12),
    "upload": ("upl_", 16),
    "batch": ("btch_", 12),
    "batch_group": ("bgrp_", 12),
    "collection": ("col_", 10),
    "document": ("doc_", 24),
    "retriever": ("ret_", 12),
    "taxonomy": ("tax_", 12),
    "execution": ("exec_", 16),
    "task": ("task_", 20),
    "cluster": ("clust_", 12),
    "cluster_run": ("run_", 16),
    "trigger": ("trg_", 14),
    "interaction": ("intr_", 16),
    "dataset": ("ds_", 12),
    "evaluation": ("eval_", 14),
    "alert": ("alt_", 14),
    "export": ("exp_", 16),
}


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(kind: str) -> str:
    prefix, length = ID_FORMATS[kind]
    return prefix + random_token(length)


def looks_like(kind: str, value: str) -> bool:
    """True when `value` carries the prefix of `kind` (used to tell ids from names)."""
    return value.startswith(ID_FORMATS[kind][0])
