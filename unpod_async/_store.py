"""The local copy a sync keeps: one SQLite file (standard library, WAL mode), many spaces.

Schema version 1 (``PRAGMA user_version``), stable: later versions may add columns and tables,
never rename or drop one. Times are UTC, ISO 8601 with microseconds and a ``Z``; ``created``,
``modified`` and ``status`` are the server's own values, as sent.

``tasks`` (primary key ``space_token, task_id``)
    ``task_id`` (else the task's ``_id``, else ``id``; a task with none is keyed
    ``json:`` + the first 32 hex digits of the SHA-256 of its JSON), ``status``, ``created``,
    ``modified``, ``json`` (the task exactly as the server sent it, as a JSONL export writes
    it), ``first_seen`` / ``last_seen`` (when the sync that first / last read it started),
    ``deleted_at`` (when the full sync that found it no longer served started; NULL while
    served; rows are never deleted).
``sync_state`` (one row per space)
    ``space_token``, ``schema_version``, the server it was synced from (``base_url``,
    ``org_handle``, ``token_salt`` and ``token_fingerprint``, a salted hash: never the token),
    ``last_run_at`` (the latest sync started), ``synced_at`` (the latest sync that finished,
    NULL until one has), ``full_synced_at``, ``pending_full`` (1 while a full sync is due: the
    first one, or one that did not finish) and ``server_count`` (the count at ``synced_at``).

Every method of :class:`Store` runs in the sync's one worker thread: a connection stays in the
thread that opened it, and the event loop never waits on SQLite. A sync holds an OS lock on a
file beside the database (``<name>.lock``) while it runs, released when its process ends,
however it ends; readers (``sqlite3``, an export from the store) need no lock.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ._atomic import create_private
from ._checkpoint import Identity, server_mismatch
from ._dates import epoch_of, parse_datetime
from ._errors import SyncError
from ._oslock import LockHeld, OsLock

__all__ = ["SCHEMA_VERSION", "Row", "Store", "SyncPlan", "close_opened", "stamp_of"]

SCHEMA_VERSION = 1
_BATCH = 500  # keys per IN (...) list: under every SQLite build's limit on parameters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    space_token TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    status      TEXT,
    created     TEXT,
    modified    TEXT,
    json        TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    deleted_at  TEXT,
    PRIMARY KEY (space_token, task_id)
);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (space_token, deleted_at, created);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (space_token, deleted_at, status);
CREATE TABLE IF NOT EXISTS sync_state (
    space_token       TEXT PRIMARY KEY,
    schema_version    INTEGER NOT NULL,
    base_url          TEXT NOT NULL,
    org_handle        TEXT,
    token_salt        TEXT NOT NULL,
    token_fingerprint TEXT NOT NULL,
    last_run_at       TEXT NOT NULL,
    synced_at         TEXT,
    full_synced_at    TEXT,
    pending_full      INTEGER NOT NULL DEFAULT 1,
    server_count      INTEGER
);
"""


def stamp_of(when: datetime) -> str:
    """``when`` as the store writes times: UTC, fixed width, so that text order is time order."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Row:
    """One task as the store keeps it."""

    task_id: str
    status: str | None
    created: str | None
    modified: str | None
    json: str


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What a sync is to do, from the store's state when it starts.

    ``stamp`` is the sync's time (``first_seen``/``last_seen``), later than any earlier sync's
    of the space; ``synced_at`` the latest finished sync's. For an incremental sync: ``stored``
    is the space's tasks in the store (not deleted), ``open_tasks`` the ``created`` (epoch
    seconds, ``-inf`` when unreadable) of those not in a final status, ``within_lookback``
    how many were created since ``lookback_start``, and ``newer_than_open`` how many were
    created after the oldest open one (about its position). ``fresh``: the store holds no task
    of the space yet.
    """

    stamp: str
    full: bool
    synced_at: str | None
    fresh: bool = False  # the store holds no task of the space yet
    stored: int = 0
    open_tasks: dict[str, float] | None = None
    within_lookback: int = 0
    newer_than_open: int = 0
    lookback_start: float = 0.0


class Store:
    """One connection to a store file (see the module's docstring for the schema)."""

    def __init__(self, path: Path, connection: sqlite3.Connection, lock: OsLock | None) -> None:
        self.path = path
        self._db = connection
        self._lock = lock

    @classmethod
    def open(cls, path: Path, *, sync: bool) -> Store:
        """Open (and for a ``sync``, lock and create if need be) the store at ``path``."""
        lock = _lock(path) if sync else None
        try:
            if sync:
                _create(path)
            elif not path.is_file():
                raise SyncError(f"no store at {path}: run `tasks sync` first")
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        store = cls(path, db, lock)
        try:
            store._prepare(create=sync)
        except BaseException:
            store.close()
            raise
        return store

    def _prepare(self, *, create: bool) -> None:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SyncError(
                f"{self.path} is a store of schema {version}, written by a newer unpod-async: "
                "upgrade to use it"
            )
        if version == 0:
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise SyncError(f"{self.path} is an SQLite file, but not an unpod-async store")
            if not create:
                raise SyncError(f"{self.path} is empty: run `tasks sync` first")
        if create:
            if version == 0:
                # Rows of a few kB fill 64 kB pages well (4 kB pages waste about a third), and
                # the page size is set once, before the first table and WAL mode.
                db.execute("PRAGMA page_size=65536")
            # A commit survives the process being killed; WAL keeps readers and the writer
            # out of each other's way, and the commits in order after a power cut.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # The key index of a big space outgrows the default 2 MB cache: inserts then slow
            # down with the size of the space.
            db.execute("PRAGMA cache_size=-65536")
            if version == 0:
                with self._transaction():
                    # One statement at a time: executescript() would commit the transaction.
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- a sync -----------------------------------------------------------------------------

    def begin(
        self,
        space: str,
        identity: Identity,
        *,
        full: bool,
        now: datetime,
        lookback: timedelta,
        final_statuses: frozenset[str],
    ) -> SyncPlan:
        """Check the space was synced from this server, record that a sync starts (before any
        request), and say what it is to do."""
        with self._transaction() as db:
            state = db.execute(
                "SELECT base_url, org_handle, token_salt, token_fingerprint, last_run_at, "
                "synced_at, pending_full FROM sync_state WHERE space_token = ?",
                (space,),
            ).fetchone()
            # Later than every earlier sync's time, even if the clock went back.
            previous = parse_datetime(state[4]) if state is not None else None
            if previous is not None and now <= previous:
                now = previous + timedelta(microseconds=1)
            stamp = stamp_of(now)
            fresh = not self._holds(space)
            if state is None or (state[5] is None and fresh):
                # New, or nothing stored yet (a first sync that failed at once: a wrong token,
                # say): the space is this server's from now on.
                salt = os.urandom(8).hex()
                db.execute(
                    "INSERT OR REPLACE INTO sync_state (space_token, schema_version, base_url, "
                    "org_handle, token_salt, token_fingerprint, last_run_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        space,
                        SCHEMA_VERSION,
                        identity.base_url,
                        identity.org_handle,
                        salt,
                        identity.token.fingerprint(salt),
                        stamp,
                    ),
                )
                return SyncPlan(stamp, True, None, fresh)
            base_url, org_handle, salt, fingerprint, _, synced_at, pending = state
            why = server_mismatch(base_url, org_handle, salt, fingerprint, identity)
            if why is not None:
                raise SyncError(
                    f"cannot sync space {space} into {self.path}: {why}. Sync it into another file"
                )
            full = full or synced_at is None or bool(pending)
            db.execute(
                "UPDATE sync_state SET last_run_at = ?, pending_full = pending_full OR ? "
                "WHERE space_token = ?",
                (stamp, full, space),
            )
            if full:
                return SyncPlan(stamp, True, synced_at, fresh)
            return self._head_plan(space, stamp, synced_at, now - lookback, final_statuses)

    def _head_plan(
        self,
        space: str,
        stamp: str,
        synced_at: str,
        lookback_start: datetime,
        final_statuses: frozenset[str],
    ) -> SyncPlan:
        # Each of these reads an index only (and the few open tasks' rows), never the JSON.
        db = self._db
        live = "SELECT {} FROM tasks WHERE space_token = ? AND deleted_at IS NULL AND {}"
        finals = sorted(final_statuses)
        not_final = f"(status IS NULL OR status NOT IN ({','.join('?' * len(finals))}))"
        rows = db.execute(live.format("task_id, created", not_final), (space, *finals)).fetchall()
        open_tasks = {task_id: _epoch(created) for task_id, created in rows}
        # ``created`` is compared as text here: the server writes one ISO form, so text order
        # is time order near enough for a plan (what ends the read is checked on the tasks).
        since = lookback_start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        within = db.execute(live.format("count(*)", "created >= ?"), (space, since)).fetchone()[0]
        stored = self._live(space)
        newer = 0
        if rows:
            oldest = min(rows, key=lambda row: _epoch(row[1]))[1]
            if _epoch(oldest) == -math.inf:
                newer = stored  # somewhere: the whole space
            else:
                query = live.format("count(*)", "created > ?")
                newer = db.execute(query, (space, oldest)).fetchone()[0]
        return SyncPlan(
            stamp,
            False,
            synced_at,
            stored=stored,
            open_tasks=open_tasks,
            within_lookback=within,
            newer_than_open=newer,
            lookback_start=lookback_start.timestamp(),
        )

    def _holds(self, space: str) -> bool:
        """Whether the store holds any task of ``space`` (deleted or not)."""
        query = "SELECT 1 FROM tasks WHERE space_token = ? LIMIT 1"
        return self._db.execute(query, (space,)).fetchone() is not None

    def _live(self, space: str) -> int:
        """The tasks of ``space`` the store holds, not marked deleted."""
        return int(
            self._db.execute(
                "SELECT count(*) FROM tasks WHERE space_token = ? AND deleted_at IS NULL",
                (space,),
            ).fetchone()[0]
        )

    def upsert(
        self, space: str, rows: Sequence[Row], stamp: str, *, fresh: bool = False
    ) -> tuple[int, int, int]:
        """Store one page's tasks in one transaction: ``(new, updated, unchanged)``. A task
        whose JSON is the same gets only its ``last_seen``. ``fresh``: the space held no task
        when the sync started (and a pull yields each task once): no need to look them up."""
        if not rows:
            return 0, 0, 0
        with self._transaction() as db:
            if fresh:
                db.executemany(
                    _INSERT + " ON CONFLICT (space_token, task_id) DO UPDATE SET "
                    "status = excluded.status, created = excluded.created, "
                    "modified = excluded.modified, json = excluded.json, last_seen = ?8",
                    [(space, *_fields(row), stamp, stamp) for row in rows],
                )
                return len(rows), 0, 0
            stored = self._stored(space, [row.task_id for row in rows])
            new, changed, same = [], [], []
            for row in rows:
                old = stored.get(row.task_id)
                if old is None:
                    new.append((space, *_fields(row), stamp, stamp))
                elif old[0] != row.json or old[1] is not None:
                    changed.append((*_fields(row)[1:], stamp, space, row.task_id))
                else:
                    same.append((stamp, space, row.task_id))
            db.executemany(_INSERT, new)
            db.executemany(
                "UPDATE tasks SET status = ?, created = ?, modified = ?, json = ?, "
                "last_seen = ?, deleted_at = NULL WHERE space_token = ? AND task_id = ?",
                changed,
            )
            db.executemany(
                "UPDATE tasks SET last_seen = ? WHERE space_token = ? AND task_id = ?", same
            )
        return len(new), len(changed), len(same)

    def _stored(self, space: str, keys: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        found: dict[str, tuple[str, str | None]] = {}
        for i in range(0, len(keys), _BATCH):
            part = keys[i : i + _BATCH]
            marks = ",".join("?" * len(part))
            query = "SELECT task_id, json, deleted_at FROM tasks WHERE space_token = ? AND "
            for task_id, json, deleted_at in self._db.execute(
                query + f"task_id IN ({marks})", (space, *part)
            ):
                found[task_id] = (json, deleted_at)
        return found

    def known(self, space: str, keys: Sequence[str], synced_at: str) -> bool:
        """Whether one of ``keys`` was stored by a sync that finished (at ``synced_at`` or
        before): every task older than such a task was stored by then too."""
        for i in range(0, len(keys), _BATCH):
            part = keys[i : i + _BATCH]
            marks = ",".join("?" * len(part))
            query = "SELECT 1 FROM tasks WHERE space_token = ? AND first_seen <= ? AND "
            if self._db.execute(
                query + f"task_id IN ({marks}) LIMIT 1", (space, synced_at, *part)
            ).fetchone():
                return True
        return False

    def finish(
        self, space: str, stamp: str, *, full: bool, count: int | None, advance: bool, sweep: bool
    ) -> tuple[int, int]:
        """The end of a sync: with ``sweep`` mark the tasks it did not read deleted, with
        ``advance`` record it as finished (after all its pages are committed); ``(deleted,
        stored)``."""
        with self._transaction() as db:
            deleted = 0
            if sweep:
                deleted = db.execute(
                    "UPDATE tasks SET deleted_at = ? "
                    "WHERE space_token = ? AND deleted_at IS NULL AND last_seen < ?",
                    (stamp, space, stamp),
                ).rowcount
            if advance:
                db.execute(
                    "UPDATE sync_state SET synced_at = ?, server_count = ?, "
                    "full_synced_at = CASE WHEN ? THEN ? ELSE full_synced_at END, "
                    "pending_full = CASE WHEN ? THEN 0 ELSE pending_full END "
                    "WHERE space_token = ?",
                    (stamp, count, full, stamp, full, space),
                )
            stored = self._live(space)
        return deleted, stored

    # --- reading ----------------------------------------------------------------------------

    def count(self, space: str) -> int:
        """The tasks of ``space`` the store holds (not deleted); an error if it was never synced."""
        state = self._db.execute("SELECT 1 FROM sync_state WHERE space_token = ?", (space,))
        if state.fetchone() is None:
            raise SyncError(f"{self.path} holds no space {space}: sync it first")
        return self._live(space)

    def batches(self, space: str, size: int) -> Iterator[list[Any]]:
        """The tasks of ``space`` (not deleted), newest ``created`` first, ``size`` at a time:
        ``(task_id, status, created, json)`` each."""
        cursor = self._db.execute(
            "SELECT task_id, status, created, json FROM tasks "
            "WHERE space_token = ? AND deleted_at IS NULL ORDER BY created DESC, rowid DESC",
            (space,),
        )
        while batch := cursor.fetchmany(size):
            yield batch


_INSERT = (
    "INSERT INTO tasks (space_token, task_id, status, created, modified, json, first_seen, "
    "last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
)


def _fields(row: Row) -> tuple[str, str | None, str | None, str | None, str]:
    return row.task_id, row.status, row.created, row.modified, row.json


def _epoch(created: str | None) -> float:
    when = epoch_of(created)
    return -math.inf if when is None else when


def close_opened(opening: Future[Store]) -> None:
    """Close the store ``opening`` (a :meth:`Store.open` handed to the store's thread) opened,
    if it did. Run in that thread after it: whoever awaited the open may have been cancelled
    meanwhile, and then no one took the store (nor its lock) it returned."""
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


def _create(path: Path) -> None:
    """Create the store's file if there is none, readable by its owner only (it holds
    personal data)."""
    try:
        create_private(path, exclusive=True).close()
    except FileExistsError:
        pass
    except OSError as exc:
        raise SyncError(f"cannot create {path}: {exc.strerror or exc}") from None


def _lock(path: Path) -> OsLock:
    """Hold the store's lock file, or refuse: another sync of the same file is running."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        return OsLock.acquire(lock_path)
    except LockHeld as held:
        who = f" (process {held.holder})" if held.holder is not None else ""
        raise SyncError(
            f"{path} is being synced by another sync{who}: one sync of a file at a time"
        ) from None
    except OSError as exc:
        raise SyncError(f"cannot open {lock_path}: {exc.strerror or exc}") from None
