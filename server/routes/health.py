"""Liveness and readiness probes (no auth: they reveal nothing about tenants)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from artifact_mcp.server.runtime import Runtime


def health_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: the store is open and answers", response_model=None)
    async def readyz() -> JSONResponse:
        if not runtime.is_open or runtime.draining:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        try:
            await runtime.store.locate("art_" + "0" * 32)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ready", "owner": runtime.store.store is not None})

    return router
