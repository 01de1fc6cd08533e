"""Principals: who a caller is, which tenant scopes it may touch, and with which permissions."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from artifact_mcp.storage.errors import Forbidden, InvalidInput
from artifact_mcp.storage.models import Scope, ScopeId

Permission = Literal["read", "write", "admin"]
PERMISSIONS: tuple[Permission, ...] = ("read", "write", "admin")
# Each permission includes the ones before it: a writer may read, an admin may write.
_RANK: dict[str, int] = {p: i for i, p in enumerate(PERMISSIONS)}

_PART = r"(\*|[A-Za-z0-9_.:\-]{1,128})"
_GRANT = re.compile(rf"^{_PART}(/{_PART}){{0,2}}$")


class ScopeGrant(BaseModel):
    """`org/workspace/namespace`, each part a name or `*`; missing trailing parts mean `*` (`acme` = `acme/*/*`)."""

    model_config = ConfigDict(frozen=True)

    org_id: str
    workspace_id: str = "*"
    namespace_id: str = "*"

    @classmethod
    def parse(cls, text: str) -> ScopeGrant:
        text = text.strip()
        if not _GRANT.match(text):
            raise InvalidInput(
                f"scope {text!r} is not org[/workspace[/namespace]] with names of letters, digits, '_', '.', ':', '-' "
                "or '*' for any (e.g. 'acme/*/*' or 'acme/research/default')"
            )
        parts = text.split("/")
        return cls(**dict(zip(("org_id", "workspace_id", "namespace_id"), parts, strict=False)))

    def label(self) -> str:
        return f"{self.org_id}/{self.workspace_id}/{self.namespace_id}"

    def covers(self, scope: Scope) -> bool:
        return all(
            want in ("*", have)
            for want, have in ((self.org_id, scope.org_id), (self.workspace_id, scope.workspace_id),
                               (self.namespace_id, scope.namespace_id))
        )

    def concrete(self) -> Scope | None:
        if "*" in (self.org_id, self.workspace_id, self.namespace_id):
            return None
        return Scope(org_id=self.org_id, workspace_id=self.workspace_id, namespace_id=self.namespace_id)


class Principal(BaseModel):
    """An authenticated caller (or the trusted local user on stdio)."""

    model_config = ConfigDict(frozen=True)

    principal_id: str
    token_id: str | None = Field(None, description="The token it authenticated with (None: local, trusted).")
    scopes: tuple[ScopeGrant, ...]
    permissions: frozenset[Permission]
    default_scope: Scope | None = None
    trusted: bool = False

    @field_validator("scopes", mode="before")
    @classmethod
    def _parse_scopes(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(ScopeGrant.parse(v) if isinstance(v, str) else v for v in value)
        return value

    def can(self, need: Permission) -> bool:
        return self.trusted or any(_RANK[p] >= _RANK[need] for p in self.permissions)

    def sees(self, scope: Scope) -> bool:
        return self.trusted or any(g.covers(scope) for g in self.scopes)

    def check(self, scope: Scope, need: Permission) -> Scope:
        """`scope` if this principal may act on it with `need`, else Forbidden naming what is missing."""
        if not self.sees(scope):
            allowed = ", ".join(g.label() for g in self.scopes) or "none"
            raise Forbidden(
                f"forbidden: principal {self.principal_id!r} has no access to scope {scope.label()} "
                f"(its token allows: {allowed}); pass org_id/workspace_id/namespace_id inside those"
            )
        if not self.can(need):
            have = ", ".join(sorted(self.permissions, key=_RANK.__getitem__)) or "none"
            raise Forbidden(
                f"forbidden: this needs the '{need}' permission on {scope.label()}; principal "
                f"{self.principal_id!r} has: {have}"
            )
        return scope

    def home(self) -> Scope | None:
        """The scope this principal acts in when it names none: its default, else its one concrete grant."""
        return self.default_scope or next((c for g in self.scopes if (c := g.concrete()) is not None), None)

    def resolve(self, org_id: str | None, workspace_id: str | None, namespace_id: str | None,
                need: Permission) -> Scope:
        """Fill omitted scope parts from the principal's default scope, then check access."""
        default = self.home()
        if default is None and None in (org_id, workspace_id, namespace_id):
            allowed = ", ".join(g.label() for g in self.scopes)
            raise InvalidInput(
                f"this token has no default scope (it allows {allowed}); pass org_id, workspace_id and namespace_id"
            )
        scope = Scope(
            org_id=org_id or default.org_id,  # type: ignore[union-attr]
            workspace_id=workspace_id or default.workspace_id,  # type: ignore[union-attr]
            namespace_id=namespace_id or default.namespace_id,  # type: ignore[union-attr]
        )
        return self.check(scope, need)


def local_principal(default_scope: Scope) -> Principal:
    """stdio (and HTTP with auth turned off): local and trusted, scope defaults from settings."""
    return Principal(principal_id="local", scopes=(ScopeGrant(org_id="*"),), permissions=frozenset(PERMISSIONS),
                     default_scope=default_scope, trusted=True)


class ScopeParams(BaseModel):
    """Optional tenant scope of a tool call; omitted parts default from the caller's default scope."""

    org_id: ScopeId | None = None
    workspace_id: ScopeId | None = None
    namespace_id: ScopeId | None = None


class Access(BaseModel):
    """Who is calling and the scope it acts on, already checked: what every use case takes first."""

    model_config = ConfigDict(frozen=True)

    scope: Scope
    principal: Principal

    @classmethod
    def check(cls, principal: Principal, scope: Scope, need: Permission) -> Access:
        """A door that knows the whole scope (the REST paths): check it against the principal's grants."""
        return cls(scope=principal.check(scope, need), principal=principal)

    @classmethod
    def resolve(cls, principal: Principal, params: ScopeParams, need: Permission) -> Access:
        """A door whose caller may omit scope parts (the tools): fill them from the default, then check."""
        scope = principal.resolve(params.org_id, params.workspace_id, params.namespace_id, need)
        return cls(scope=scope, principal=principal)

    def author(self, claimed: str | None) -> str | None:
        """created_by/updated_by: an authenticated caller is recorded as its principal, whatever it claims."""
        return claimed if self.principal.trusted else self.principal.principal_id
