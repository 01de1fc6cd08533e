"""The chunk change feed on PostgreSQL: what other processes wrote to `chunks`, in `change_id` order, for this
process's search cache to follow (services/following.py).

A write appends a row to `chunk_changes` and notifies `artifact_mcp_chunks` in its own transaction
(chunks.py), so a follower wakes when it commits (`wait`, on a dedicated LISTEN connection) and reads past the
last id it saw; it also polls, so a lost notification (a dropped connection) costs at most one poll interval.
Ids are taken at insert and committed in any order: an id missing below the highest seen may belong to a
transaction still open, so it is looked for again until it appears or is old enough to have been rolled back.
"""

from __future__ import annotations

import json
import logging
import time

import psycopg

from artifact_mcp.storage.models import ChangeEvent
from artifact_mcp.storage.repositories.postgres.chunks import CHANGES_CHANNEL
from artifact_mcp.storage.repositories.postgres.connections import Connections
from artifact_mcp.storage.repositories.rows import ChunkChange, ChunkVector

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "artifact_mcp_events"
# A sequence gap older than this is a rolled-back transaction, not a slow one.
GAP_SECONDS = 30.0


class PostgresChangeFeed:
    def __init__(self, db: Connections, url: str, *, writer: str) -> None:
        self._db = db
        self._url = url
        self._writer = writer
        self._listen: psycopg.Connection[tuple[object, ...]] | None = None
        self._seen = 0
        self._gaps: dict[int, float] = {}  # missing id -> when first missed
        self._events: list[ChangeEvent] = []

    def start(self) -> None:
        """Follow from now: what is already stored was loaded with the cache."""
        row = self._db.one("SELECT coalesce(max(change_id), 0) FROM chunk_changes")
        self._seen = int(row[0]) if row else 0
        self._gaps.clear()

    def read(self, limit: int = 500) -> list[ChunkChange]:
        """Changes other processes committed since the last read (this process's own are skipped)."""
        missing = sorted(self._gaps)
        rows = self._db.all(
            "SELECT change_id, added_seqs, removed_ids, updated_ids, cleared, writer FROM chunk_changes "
            "WHERE change_id > %s OR change_id = ANY(%s) ORDER BY change_id LIMIT %s",
            [self._seen, missing, limit])
        out: list[ChunkChange] = []
        now = time.monotonic()
        for change_id, added, removed, updated, cleared, writer in rows:
            change_id = int(change_id)
            self._gaps.pop(change_id, None)
            if change_id > self._seen:
                for gap in range(self._seen + 1, change_id):
                    self._gaps.setdefault(gap, now)
                self._seen = change_id
            if writer != self._writer:
                out.append(ChunkChange(change_id, list(added), list(removed), list(updated), bool(cleared)))
        for gap, since in list(self._gaps.items()):
            if now - since > GAP_SECONDS:
                del self._gaps[gap]
        return out

    def chunk_rows(self, seqs: list[int]) -> list[ChunkVector]:
        rows = self._db.all("SELECT seq, artifact_id, n_terms, embedding FROM chunks WHERE seq = ANY(%s) "
                            "ORDER BY seq", [seqs])
        return [ChunkVector(int(r[0]), r[1], int(r[2]), bytes(r[3])) for r in rows if r[3] is not None]

    def postings_of(self, seqs: list[int]) -> list[tuple[int, int, int]]:
        """(seq, term, tf) of these chunks."""
        return [(int(r[0]), int(r[1]), int(r[2])) for r in self._db.all(
            "SELECT seq, term, tf FROM postings WHERE seq = ANY(%s)", [seqs])]

    def publish(self, event: ChangeEvent) -> None:
        """On `artifact_mcp_events`: delivered to every listening replica when sent (an event follows its commit:
        the store returns it after the transaction). NOTIFY payloads are limited to 8000 bytes, so a change of
        very many versions is sent as its root alone."""
        payload = json.dumps({"w": self._writer, "e": event.model_dump(mode="json")})
        if len(payload) > 7900:
            payload = json.dumps({"w": self._writer, "e": event.model_copy(
                update={"artifact_ids": [event.root_artifact_id]}).model_dump(mode="json")})
        self._db.one("SELECT pg_notify(%s, %s)", [EVENTS_CHANNEL, payload])

    def take_events(self) -> list[ChangeEvent]:
        events, self._events = self._events, []
        return events

    def wait(self, timeout: float) -> bool:
        """Block until a change is notified or `timeout` passes; True if a chunk change was. Announced events
        are kept for `take_events`. Errors end in a False after the timeout: the caller polls anyway, and the
        connection is opened again on the next call."""
        try:
            if self._listen is None or self._listen.closed:
                self._listen = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
                self._listen.execute(f"LISTEN {CHANGES_CHANNEL}")
                self._listen.execute(f"LISTEN {EVENTS_CHANNEL}")
            chunks = False
            for note in self._listen.notifies(timeout=timeout, stop_after=1):
                if note.channel == CHANGES_CHANNEL:
                    chunks = True
                else:
                    self._received(note.payload)
            # Drain what else arrived meanwhile without waiting again.
            for note in self._listen.notifies(timeout=0.0):
                if note.channel == CHANGES_CHANNEL:
                    chunks = True
                else:
                    self._received(note.payload)
            return chunks
        except psycopg.Error as exc:
            log.debug("change feed LISTEN failed (%s); polling", exc)
            if self._listen is not None:
                self._listen.close()
                self._listen = None
            time.sleep(timeout)
            return False

    def _received(self, payload: str) -> None:
        try:
            got = json.loads(payload)
            if got.get("w") != self._writer:
                self._events.append(ChangeEvent.model_validate(got["e"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed change announcement: %s", exc)

    def close(self) -> None:
        if self._listen is not None:
            self._listen.close()
            self._listen = None
