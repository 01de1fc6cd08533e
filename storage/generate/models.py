"""What generate_artifact accepts and returns, and the document structure every format is rendered from."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from artifact_mcp.storage.models import (
    ARTIFACT_ID_PATTERN,
    MAX_NAME_CHARS,
    MAX_QUERY_CHARS,
    Artifact,
    Job,
    Scope,
    ScopeId,
)
from artifact_mcp.storage.text import CleanInput, Label

DocumentType = Literal["summary", "report", "transcript", "digest"]
OutputFormat = Literal["markdown", "html", "json", "pdf"]
Branding = Literal["light", "dark"]

MAX_MATERIAL_IDS = 100
MAX_THREAD_ARTIFACTS = 500
IDEMPOTENCY_TTL_SECONDS = 24 * 3600

# Per format: the stored mime type and file extension.
FORMAT_MIME: dict[str, tuple[str, str]] = {
    "markdown": ("text/markdown", "md"),
    "html": ("text/html", "html"),
    "json": ("application/json", "json"),
    "pdf": ("application/pdf", "pdf"),
}
# Default length of the written part, per type (words); a transcript is never shortened.
DEFAULT_MAX_WORDS: dict[str, int] = {"summary": 250, "digest": 400, "report": 1200, "transcript": 0}

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"  # visible ASCII, as HTTP header values allow
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN),
    Field(description="Any 1-255 visible ASCII characters, e.g. a UUID. The same key with the same request returns "
                      "the first artifact (for 24 h); with a different request it is an error."),
]


class GenerateOptions(BaseModel):
    include_transcript: bool = Field(
        False, description="Append the material's full transcript (names, times, provenance, content)."
    )
    branding: Branding = Field("light", description="Colour scheme of the HTML and PDF output.")
    title: Annotated[str | None, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS,
                                                   strip_whitespace=True), Label] = Field(
        None, description="Document title (also the artifact's name); default from the type and the material."
    )
    max_words: Annotated[int | None, Field(ge=20, le=20_000)] = Field(
        None, description="Length of the written part in words (default: summary 250, digest 400, report 1200); "
                          "a transcript is never cut."
    )


class GenerateSpec(CleanInput):
    """A document to generate from material: a thread, artifact ids and/or a search's top results (the body of
    POST …/artifacts/generate; the idempotency key travels beside it, as a header or a tool argument)."""

    document_type: DocumentType = Field(
        description="summary (short prose), report (overview + one section per artifact), transcript (the artifacts "
                    "in order, verbatim, with names, times and provenance) or digest (one highlight per artifact)."
    )
    format: OutputFormat = Field("markdown", description="markdown, html, json (title/sections/citations) or pdf.")
    thread_id: ScopeId | None = Field(
        None, description="Material: the thread's artifacts, oldest first (documents generated earlier are left "
                          "out; name them in artifact_ids to include them). The document joins the thread."
    )
    artifact_ids: Annotated[
        list[Annotated[str, StringConstraints(pattern=ARTIFACT_ID_PATTERN)]] | None,
        Field(max_length=MAX_MATERIAL_IDS),
    ] = Field(None, description=f"Material: these artifacts (any version id; at most {MAX_MATERIAL_IDS}).")
    query: Annotated[str | None, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS,
                                                   strip_whitespace=True)] = Field(
        None, description="Material: the top_k results of this search (hybrid query_artifacts)."
    )
    top_k: Annotated[int, Field(ge=1, le=50)] = Field(10, description="How many search results `query` adds.")
    options: GenerateOptions = Field(default_factory=GenerateOptions)

    @field_validator("artifact_ids", mode="after")
    @classmethod
    def _dedupe(cls, value: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(value)) if value else value

    @model_validator(mode="after")
    def _has_material(self) -> Self:
        if not (self.thread_id or self.artifact_ids or self.query):
            raise ValueError("give the material to generate from: thread_id, artifact_ids and/or query")
        return self


class GenerateRequest(GenerateSpec):
    """What the store's generate operation takes: the spec and its idempotency key."""

    idempotency_key: IdempotencyKey | None = None

    def request_hash(self, scope: Scope) -> str:
        """Identity of the request for idempotency: everything but the key itself."""
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        body["scope"] = scope.model_dump()
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    @property
    def max_words(self) -> int:
        return self.options.max_words or DEFAULT_MAX_WORDS[self.document_type]


class Draft(BaseModel):
    """Markdown written by the client's model (MCP sampling), handed to the generation job."""

    text: str
    model: str | None = None


class MaterialItem(BaseModel):
    """One artifact of the material, as the writer sees it."""

    artifact_id: str
    name: str
    version: int
    artifact_type: str
    mime_type: str
    created_at: datetime
    created_by: str | None = None
    source: str | None = None
    source_tool: str | None = None
    thread_id: str | None = None
    text: str = Field(description="The artifact's text ('' when it has none, e.g. an image).")
    truncated: bool = False


class Material(BaseModel):
    items: list[MaterialItem]


Writer = Literal["client_model", "extractive", "verbatim"]


class GenerateResult(BaseModel):
    artifact: Artifact = Field(description="The generated artifact: status 'processing' until its job ends, then "
                                           "'completed' (or 'failed' with generation_error).")
    job: Job = Field(description="The generation job (see list_artifact_jobs).")
    reused: bool = Field(description="True when an earlier call with the same idempotency_key made this artifact.")
    writer: Writer = Field(description="Who writes the text: the client's model (sampling), the server's extractive "
                                       "summarizer, or verbatim (transcript).")


# --- the document --------------------------------------------------------------------------------


class Block(BaseModel):
    kind: Literal["paragraph", "bullet", "code", "meta", "heading"]
    text: str
    level: int = Field(0, description="Heading level (3+) inside a section, for 'heading' blocks.")


class Section(BaseModel):
    heading: str
    blocks: list[Block] = Field(default_factory=list)
    citations: list[str] = Field(default_factory=list, description="Artifact ids this section's content came from.")


class Citation(BaseModel):
    artifact_id: str
    name: str
    version: int
    created_at: datetime
    uri: str


class Document(BaseModel):
    title: str
    document_type: DocumentType
    writer: Writer
    generated_at: datetime
    branding: Branding = "light"
    sections: list[Section]
    citations: list[Citation] = Field(description="Every artifact of the material, in material order.")

    @field_validator("generated_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
