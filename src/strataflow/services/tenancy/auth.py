"""Organizations and API keys.

Keys are 256-bit random tokens, so a single SHA-256 is a sound way to store
them (no dictionary to attack, unlike passwords); only the hash and a short
display prefix are kept.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.errors import AlreadyExistsError, BadRequestError, UnauthorizedError, not_found
from strataflow.ids import new_id
from strataflow.services.tenancy.scope import Principal
from strataflow.store.tables import ApiKey, Organization

DEFAULT_ORG = "default"
KEY_PREFIX = "sk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    org_name: str
    plaintext: str


def bearer_token(authorization: str | None) -> str:
    """The API key in an Authorization header; 401 when the header is missing or not 'Bearer <key>'."""
    if not authorization:
        raise UnauthorizedError("Missing Authorization header; send 'Authorization: Bearer <api key>'")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("Authorization must be 'Bearer <api key>'")
    return token


# Three columns, not the ORM entity, and built once: this runs on every request, and building a
# statement or loading an entity costs more than the indexed read itself.
_KEY_BY_HASH = select(ApiKey.org_id, ApiKey.key_id, ApiKey.revoked_at).where(ApiKey.key_hash == bindparam("key_hash"))


def authenticate(session: Session | Connection, authorization: str | None) -> Principal:
    token = bearer_token(authorization)
    row = session.execute(_KEY_BY_HASH, {"key_hash": hash_key(token)}).first()
    if row is None or row.revoked_at is not None:
        raise UnauthorizedError("Invalid or revoked API key")
    return Principal(org_id=row.org_id, key_id=row.key_id)


def create_organization(session: Session, name: str) -> Organization:
    name = name.strip()
    if not name or len(name) > 128:
        raise BadRequestError("Organization names are 1 to 128 characters")
    if session.scalar(select(Organization).where(Organization.name == name)) is not None:
        raise AlreadyExistsError(f"Organization '{name}' already exists", {"name": name})
    org = Organization(org_id=new_id("organization"), name=name, internal_id=new_id("internal"))
    session.add(org)
    session.flush()
    return org


def get_organization(session: Session, name: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        raise not_found("Organization", name)
    return org


def issue_key(session: Session, org: Organization, name: str, plaintext: str | None = None) -> IssuedKey:
    key = plaintext or generate_key()
    if len(key) < 16:
        raise BadRequestError("API keys must be at least 16 characters long")
    if session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key))) is not None:
        raise AlreadyExistsError("That API key is already registered")
    row = ApiKey(key_id=new_id("api_key"), org_id=org.org_id, name=name, key_hash=hash_key(key), key_prefix=key[:10])
    session.add(row)
    session.flush()
    return IssuedKey(key_id=row.key_id, org_name=org.name, plaintext=key)


def list_keys(session: Session, org_name: str | None = None) -> list[tuple[ApiKey, Organization]]:
    query = select(ApiKey, Organization).join(Organization, Organization.org_id == ApiKey.org_id)
    if org_name:
        query = query.where(Organization.name == org_name)
    return [(k, o) for k, o in session.execute(query.order_by(ApiKey.created_at))]


def revoke_key(session: Session, key_id: str) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise not_found("API key", key_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def bootstrap(session: Session, admin_key_path: Path, preset_key: str | None) -> IssuedKey | None:
    """On first start, create the default organization and its admin key.

    The key comes from STRATAFLOW_API_KEY when set; otherwise it is generated
    and written to `admin_key_path` (mode 0600). Returns None when the
    database was already initialised.
    """
    if session.scalar(select(func.count()).select_from(Organization)):
        return None
    org = create_organization(session, DEFAULT_ORG)
    issued = issue_key(session, org, "admin", preset_key)
    if preset_key is None:
        write_secret_file(admin_key_path, issued.plaintext)
    return issued


def write_secret_file(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content + "\n")
    tmp.replace(path)
