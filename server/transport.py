"""Transport security: Host / Origin checks against DNS rebinding."""

from __future__ import annotations

from mcp.server.transport_security import TransportSecuritySettings

from artifact_mcp.server.settings import Settings


def transport_security(settings: Settings) -> TransportSecuritySettings | None:
    """The SDK's localhost defaults (on for 127.0.0.1 / localhost / ::1) unless hosts/origins are configured;
    `dns_rebinding_protection=false` turns the checks off (behind a proxy that does them)."""
    if not settings.dns_rebinding_protection:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if not settings.allowed_hosts and not settings.allowed_origins:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.allowed_hosts,
        allowed_origins=settings.allowed_origins,
    )
