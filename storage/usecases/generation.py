"""The generation use case: accept a document request (idempotently), and optionally wait until it is written."""

from __future__ import annotations

from artifact_mcp.storage.access import Access
from artifact_mcp.storage.generate.models import Draft, GenerateRequest, GenerateResult, GenerateSpec, Material
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.progress import Progress, report


def request_of(spec: GenerateSpec, idempotency_key: str | None) -> GenerateRequest:
    return GenerateRequest.model_validate({**spec.model_dump(include=set(GenerateSpec.model_fields)),
                                           "idempotency_key": idempotency_key})


async def material_to_write(store: StoreClient, access: Access, req: GenerateRequest) -> Material | None:
    """The material a client's model should write from, or None when nothing needs writing (a transcript is
    verbatim; a replayed idempotency key returns the first call's document)."""
    if req.document_type == "transcript":
        return None
    if await store.find_generation(access.scope, access.principal.principal_id, req) is not None:
        return None
    return await store.generation_material(access.scope, req)


async def generate_artifact(store: StoreClient, access: Access, req: GenerateRequest, *, wait: bool = False,
                            wait_timeout_seconds: float = 300.0, draft: Draft | None = None,
                            progress: Progress | None = None) -> GenerateResult:
    result = await store.generate(access.scope, access.principal.principal_id, req, draft=draft,
                                  created_by=access.author(None))
    if not wait or result.artifact.status != "processing":
        return result

    async def on_state(state: str, fraction: float) -> None:
        await report(progress, fraction, f"document {state}")

    await on_state("queued", 0.2)
    art = await store.wait_generated(access.scope, result.artifact.artifact_id, wait_timeout_seconds, on_state)
    jobs = await store.list_jobs(access.scope, art.artifact_id)
    job = next((j for j in jobs.jobs if j.job_id == result.job.job_id), result.job)
    return result.model_copy(update={"artifact": art, "job": job})
