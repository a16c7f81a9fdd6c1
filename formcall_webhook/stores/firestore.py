"""firestore:// and firestore://PROJECT/DATABASE: serverless, shared by every instance, no VPC (spec 8).

Only the public client of `google-cloud-firestore` is used: `Client.get_all` to read, `WriteBatch`
with preconditions (`Client.write_option`) to write, `Query.stream` to query, each with our own
`retry` and `timeout` arguments.

Every read-decide-write is optimistic: the documents are read (one BatchGetDocuments, no transaction),
and every write carries a precondition on what was read: `create` (the document must not exist) for a
document that was absent, its update time for one that was there. One Commit applies all of them or
none; when another writer got there first, the operation reads again and decides again (at most eight
attempts). That is a transaction without locks: the emulator (and Firestore under contention) makes a
locking transaction wait for its lock timeout when several take the same claim at once, while here the
losers see the winner's claim on their second read.

A store that stumbles (spec 8): each operation has a deadline (a few RPC timeouts, within the
request's). One transient error (unavailable, deadline exceeded, a reset) is retried once within it,
then the answer is StoreUnavailable (503 `store_unavailable`).

An uncertain write is resolved before anyone is answered: a Commit whose answer was lost (a timeout or
a reset after it was sent) may have applied. The documents it wrote are read back and compared with
what it would have made (claims carry the admission's marker, a record its lead id and JSON): there,
it applied; not there, the store first makes sure it never will (a "fence": a write that fails the
lost Commit's preconditions, such as creating the record's document empty), then decides again. So a
503 never leaves a record behind that the sweeper would call.

Round trips (RPCs), which `round_trips` counts:
- `admit`: two (the read of opt-out, claims and counters; the Commit, which also checks that the
  opt-out is still absent). A duplicate: one, the read.
- `finish`: one Commit when this instance wrote (or read) every document it touches: the update times
  it remembers are the preconditions. Else, or when one fails, a read and a Commit. A lead placed by
  one instance thus costs three RPCs: two before FormCall, one after.
- `claim`: one create; a read and a Commit more when the key exists. `put`, `delete`, `delete_lead`,
  `set_optout`, `get_lead`, `is_opted_out`, the heartbeat: one. `release`, `replace`, `hit`: a read and
  a Commit (the read skipped when this instance wrote the document last). `save_lead`: one create for a
  new record, else a read and a Commit. Queries: one RunQuery per page of 500.

Data model (the deploy makes the TTL policies on `expires_at` and the composite index state +
received_at for exactly these names): `formcall_claims` holds claims, counters and the sweeper's
heartbeat (`value`, `expires` epoch seconds, `expires_at` timestamp); `formcall_leads` one document per
lead, the record as its `json` plus the fields queries use; `formcall_optout` one document per phone
hash. Expiry is checked here, against `expires`: Firestore's TTL deletes up to a day late. A fence is
a document with `expires` 0: absent to every reader, deleted by the TTL policy.

The client library is imported by `FirestoreStore()` only: cold start with memory:// never pays for it.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from .base import (
    HEARTBEAT_SECONDS,
    PACE_HORIZON,
    Admission,
    Admitted,
    Finish,
    Heartbeat,
    Pace,
    StoreUnavailable,
    unavailable,
)

CLAIMS = "formcall_claims"
# Slots of a pace read at once (spec 11): a burst of this many periods' calls costs no extra round trip.
_PACE_WINDOW = 12
LEADS = "formcall_leads"
OPTOUT = "formcall_optout"
HEARTBEAT = "formcall:heartbeat"  # a document of CLAIMS
DEFAULT_DATABASE = "(default)"
MAX_ATTEMPTS = 8  # reads and Commits of one operation when other writers keep getting there first
_PAGE = 500
_KNOWN_MAX = 4096  # documents this instance remembers as it last wrote or read them (see `_transact`)
_RESOLVE_ROUNDS = 4  # read-backs and fences spent on one lost Commit before giving up (503)
# An operation's deadline, in RPC timeouts: the first try and one retry of a transient error.
_BUDGET_TIMEOUTS = 2.5
_RETRY_PAUSE = 0.25  # seconds before the one retry

T = TypeVar("T")


def parse_url(url: str) -> tuple[str | None, str]:
    """(project, database) of firestore:// (project from the environment) or firestore://PROJECT/DATABASE."""
    if not url.startswith("firestore://"):
        raise ValueError("a Firestore store URL starts with firestore://")
    rest = url[len("firestore://") :]
    if any(c in rest for c in "?#@: "):
        raise ValueError("a Firestore store URL is firestore:// or firestore://PROJECT/DATABASE")
    parts = rest.split("/")
    if len(parts) > 2 or (len(parts) == 2 and not parts[0]):
        raise ValueError("a Firestore store URL is firestore:// or firestore://PROJECT/DATABASE")
    project = parts[0] or None
    database = parts[1] if len(parts) == 2 and parts[1] else DEFAULT_DATABASE
    return project, database


def doc_id(key: str) -> str:
    """A document id for a store key: "/" and "%" escaped, and never one of Firestore's reserved ids."""
    escaped = key.replace("%", "%25").replace("/", "%2F")
    if escaped in ("", ".", "..") or escaped.startswith("__"):
        # "%" alone never comes out of the escaping above, so this stays one-to-one.
        escaped = "%" + escaped
    return escaped


def _timestamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True)
class _Doc:
    fields: dict[str, Any]
    update_time: Any  # DatetimeWithNanoseconds: what a precondition compares

    def live_value(self, now: float) -> str | None:
        """A claim's or counter's value while it has not expired."""
        expires = self.fields.get("expires")
        if not isinstance(expires, (int, float)) or expires <= now:
            return None
        value = self.fields.get("value")
        return value if isinstance(value, str) else None

    def record(self, now: float) -> dict[str, Any] | None:
        """A lead's record while it has not expired."""
        return _record_of(self.fields, now)


def _record_of(fields: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    expires = fields.get("expires")
    if isinstance(expires, (int, float)) and expires <= now:
        return None
    raw = fields.get("json")
    if not isinstance(raw, str):
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _lead_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as one JSON string (read back exactly as saved) and the fields queries and TTL use."""
    received = float(record["received_ts"])
    expires = record.get("expires_at")
    due = record.get("due_at")
    fields: dict[str, Any] = {
        "json": json.dumps(record, separators=(",", ":")),
        "state": record.get("state"),
        "route": record.get("route"),
        "received_ts": received,
        "received_at": _timestamp(received),
        "due_at": float(due) if due is not None else None,
        "phone_hash": record.get("phone_hash"),
        "version": int(record.get("version") or 0),
        # Always both: `update` with a precondition replaces only the fields it names.
        "expires": float(expires) if isinstance(expires, (int, float)) else None,
        "expires_at": _timestamp(float(expires)) if isinstance(expires, (int, float)) else None,
    }
    return fields


def _claim_fields(value: str, expires: float) -> dict[str, Any]:
    return {"value": value, "expires": expires, "expires_at": _timestamp(expires)}


def _fence_fields(token: str) -> dict[str, Any]:
    """An empty document that every reader takes for absent (expired at once) and the TTL deletes."""
    return {"fence": token, "expires": 0.0, "expires_at": _timestamp(time.time())}


def _made(fields: dict[str, Any] | None, doc: _Doc | None) -> bool:
    """Whether `doc` is what a write of `fields` made (None: a delete, or a check of absence)."""
    if fields is None:
        return doc is None
    if doc is None:
        return False
    # Timestamps are compared through their epoch twins (`expires`, `received_ts`): same instant.
    return all(doc.fields.get(k) == v for k, v in fields.items() if not isinstance(v, datetime))


Docs = dict[str, _Doc | None]


class _WindowFull(Exception):
    """Every slot of the pace's window read is full: read the next window."""


class _Lost(Exception):
    """A Commit's answer was lost (timeout, reset): it may or may not have applied."""


class _NotApplied(Exception):
    """A lost Commit was resolved: it did not apply, and now never will."""


class _Operation:
    """One store operation's deadline and its one retry of a transient error (thread-local)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.retries = 1
        self.depth = 0


class _Writes:
    """Writes for one Commit. A document in `read` is written only if it is still as read: created
    when it was absent, updated or deleted with its update time as the precondition."""

    def __init__(self, client: Any, read: Docs) -> None:
        self.batch = client.batch()
        self.client = client
        self.read = read
        # per write, in order: (document, its fields afterwards; None when deleted)
        self.effects: list[tuple[Any, dict[str, Any] | None]] = []
        # documents written with a precondition: a write there stops this Commit from ever applying
        self.guarded: list[Any] = []

    def __bool__(self) -> bool:
        return bool(self.effects)

    def covers(self) -> bool:
        """Whether every document read is written (so the Commit's preconditions check every read)."""
        return set(self.read) <= {ref.path for ref, _ in self.effects}

    def precondition(self, doc: _Doc) -> Any:
        return self.client.write_option(last_update_time=doc.update_time)

    def set(self, ref: Any, fields: dict[str, Any]) -> None:
        path = ref.path
        if path not in self.read:
            self.batch.set(ref, fields)
        elif (doc := self.read[path]) is None:
            self.batch.create(ref, fields)
            self.guarded.append(ref)
        else:
            self.batch.update(ref, fields, option=self.precondition(doc))
            self.guarded.append(ref)
        self.effects.append((ref, fields))

    def create(self, ref: Any, fields: dict[str, Any]) -> None:
        """A document that must not exist yet (a new lead's record: its id is new)."""
        self.batch.create(ref, fields)
        self.guarded.append(ref)
        self.effects.append((ref, fields))

    def delete(self, ref: Any) -> None:
        doc = self.read.get(ref.path)
        self.batch.delete(ref, option=self.precondition(doc) if doc is not None else None)
        if doc is not None:
            self.guarded.append(ref)
        self.effects.append((ref, None))

    def still_absent(self, ref: Any) -> None:
        """No write, only a check: the Commit fails if the document appeared since it was read (a
        delete that requires the document not to exist)."""
        self.batch.delete(ref, option=self.client.write_option(exists=False))
        self.effects.append((ref, None))


class FirestoreStore:
    """Claims, counters and the lead ledger in Firestore; every operation atomic (see the module doc)."""

    def __init__(self, url: str, timeout: float = 2.0, budget: float | None = None) -> None:
        project, database = parse_url(url)
        # Imported here: only deployments that use Firestore pay for it.
        import grpc  # type: ignore[import-untyped]
        from google.api_core import exceptions
        from google.api_core.retry import Retry, if_exception_type
        from google.auth import exceptions as auth_exceptions
        from google.cloud import firestore
        from google.cloud.firestore_v1.base_query import FieldFilter

        self.round_trips = 0
        self._timeout = timeout
        self._budget = budget if budget is not None else timeout * _BUDGET_TIMEOUTS
        self._local = threading.local()
        self._count_lock = threading.Lock()
        # Documents as this instance last wrote or read them: a Commit can take them as preconditions
        # without reading first (a stale one fails the Commit, and the operation reads).
        self._known: OrderedDict[str, _Doc] = OrderedDict()
        self._known_lock = threading.Lock()
        # The answers that mean "another writer got there first": read again and decide again.
        self._conflict: tuple[type[BaseException], ...] = (
            exceptions.AlreadyExists,
            exceptions.FailedPrecondition,
            exceptions.NotFound,
            exceptions.Aborted,
        )
        # Transient: worth one more try. On a Commit they leave its outcome unknown (`_Lost`).
        self._transient: tuple[type[BaseException], ...] = (
            exceptions.ServiceUnavailable,
            exceptions.DeadlineExceeded,
            exceptions.InternalServerError,
            exceptions.Unknown,
            exceptions.Aborted,
            exceptions.RetryError,
            auth_exceptions.TransportError,
            grpc.RpcError,
            OSError,
        )
        self._errors: tuple[type[BaseException], ...] = (
            exceptions.GoogleAPIError,
            auth_exceptions.GoogleAuthError,
            grpc.RpcError,
            OSError,
        )
        # Every public method gets this as `retry`: a real Retry (the library consults its predicate
        # when a stream breaks midway) that never retries, since the retry within the deadline is ours.
        # (retry=None would make a broken query stream raise AttributeError instead of its error.)
        self._no_retry: Any = Retry(predicate=if_exception_type(), timeout=timeout)
        self._filter = FieldFilter
        try:
            # FIRESTORE_EMULATOR_HOST, when set, is honoured by the client itself.
            self._client: Any = firestore.Client(project=project, database=database)
        except self._errors as err:  # no project or credentials found
            raise unavailable(err) from err
        self._claims = self._client.collection(CLAIMS)
        self._leads = self._client.collection(LEADS)
        self._optout = self._client.collection(OPTOUT)

    # -- deadlines and RPCs --

    def _operation(self) -> _Operation:
        op: _Operation | None = getattr(self._local, "op", None)
        if op is None:
            op = _Operation(time.monotonic() + self._budget)
            self._local.op = op
        op.depth += 1
        return op

    def _done(self, op: _Operation) -> None:
        op.depth -= 1
        if op.depth == 0:
            self._local.op = None

    def _op(self, work: Callable[[], T]) -> T:
        """`work` as one operation: one deadline and one retry for every RPC it makes."""
        op = self._operation()
        try:
            return work()
        finally:
            self._done(op)

    def _rpc_timeout(self, grace: bool = False) -> float:
        """The next RPC's timeout: ours; once the retry is spent, cut to what is left of the operation's
        deadline, but never under half of ours (a Commit given no time would only be lost).
        `grace`: an RPC that resolves a lost Commit always gets a whole timeout."""
        op: _Operation | None = getattr(self._local, "op", None)
        if grace or op is None or op.retries > 0:
            return self._timeout
        return max(self._timeout / 2, min(self._timeout, op.deadline - time.monotonic()))

    def _may_retry(self) -> bool:
        """Whether the operation still has its one retry and time for it (half a timeout); spends it,
        after a pause: a connection that just broke is often still taken for ready at once after."""
        op: _Operation | None = getattr(self._local, "op", None)
        if op is None or op.retries <= 0 or op.deadline - time.monotonic() < self._timeout / 2:
            return False
        op.retries -= 1
        time.sleep(min(_RETRY_PAUSE, self._timeout / 4))
        return True

    def _count(self) -> None:
        with self._count_lock:
            self.round_trips += 1

    def _rpc(self, call: Callable[..., T], *, grace: bool = False) -> T:
        """One idempotent round trip (a read): a transient error is retried once within the deadline."""
        while True:
            timeout = self._rpc_timeout(grace)
            self._count()
            try:
                return call(retry=self._no_retry, timeout=timeout)
            except self._transient as err:
                if grace or not self._may_retry():
                    raise unavailable(err) from err
            except self._errors as err:
                raise unavailable(err) from err

    def _read(self, refs: list[Any], *, grace: bool = False) -> Docs:
        """The documents at `refs`, in one BatchGetDocuments."""
        unique = list({ref.path: ref for ref in refs}.values())

        def call(**kwargs: Any) -> list[Any]:
            return list(self._client.get_all(unique, **kwargs))

        docs: Docs = dict.fromkeys(ref.path for ref in unique)
        for snapshot in self._rpc(call, grace=grace):
            if snapshot.exists:
                docs[snapshot.reference.path] = _Doc(snapshot.to_dict() or {}, snapshot.update_time)
        with self._known_lock:
            for path, doc in docs.items():
                self._remember(path, doc)
        return docs

    def _remember(self, path: str, doc: _Doc | None) -> None:
        self._known.pop(path, None)
        if doc is not None:
            self._known[path] = doc
            while len(self._known) > _KNOWN_MAX:
                self._known.popitem(last=False)

    def _forget(self, writes: _Writes) -> None:
        with self._known_lock:  # what we knew of these documents is stale
            for ref, _ in writes.effects:
                self._known.pop(ref.path, None)

    def _cached(self, refs: list[Any]) -> Docs | None:
        """The documents as this instance last saw them, when it saw them all."""
        with self._known_lock:
            docs: Docs = {}
            for ref in refs:
                doc = self._known.get(ref.path)
                if doc is None:
                    return None
                docs[ref.path] = doc
            return docs

    def _send(self, writes: _Writes, *, grace: bool = False) -> list[Any]:
        """One Commit: its write results; `_Lost` when its answer was lost, a conflict as raised."""
        timeout = self._rpc_timeout(grace)
        self._count()
        try:
            results: list[Any] = writes.batch.commit(retry=self._no_retry, timeout=timeout)
        except self._conflict:
            self._forget(writes)
            raise
        except self._transient as err:
            self._forget(writes)
            raise _Lost() from err
        except self._errors as err:
            self._forget(writes)
            raise unavailable(err) from err
        return results

    def _commit(self, writes: _Writes) -> None:
        """One Commit whose outcome is known when this returns: applied (returns), not applied
        (`_NotApplied`: it never will), refused by a precondition (a conflict), or StoreUnavailable."""
        try:
            results = self._send(writes)
        except _Lost as lost:
            self._resolve(writes, lost)
            return
        with self._known_lock:
            for (ref, fields), result in zip(writes.effects, results, strict=False):
                update_time = getattr(result, "update_time", None)
                known = _Doc(fields, update_time) if fields is not None and update_time else None
                self._remember(ref.path, known)

    def _resolve(self, writes: _Writes, lost: _Lost) -> None:
        """A lost Commit: read back what it would have made. There: it applied (returns). Not there:
        fence it (a write that fails its preconditions) and raise `_NotApplied`. Unknowable in time:
        StoreUnavailable."""
        refs = [ref for ref, _ in writes.effects]
        token = secrets.token_hex(8)
        # The fence goes on the record when the Commit makes one (the sweeper reads records), else on
        # any document the Commit has a precondition on: one failed precondition fails all of it.
        guard = next((ref for ref in writes.guarded if ref.parent.id == LEADS), None)
        guard = guard or (writes.guarded[0] if writes.guarded else None)
        # A connection that just failed may refuse the next RPC at once: each round may fail, within
        # a few rounds and two timeouts.
        give_up = time.monotonic() + 2 * self._timeout
        failure: StoreUnavailable | None = None
        for attempt in range(_RESOLVE_ROUNDS):
            if attempt:
                time.sleep(min(_RETRY_PAUSE, self._timeout / 4) * attempt)
            if failure is not None and time.monotonic() >= give_up:
                break
            try:
                docs = self._read(refs, grace=True)
            except StoreUnavailable as err:
                failure = err
                continue
            if all(_made(fields, docs[ref.path]) for ref, fields in writes.effects):
                return  # it applied
            if guard is None:
                # No precondition anywhere: the same writes sent again cannot do harm.
                raise _NotApplied() from lost
            doc = docs[guard.path]
            if doc is not None and doc.fields.get("fence") == token:
                raise _NotApplied() from lost  # our fence (whose answer was lost too) stands
            fence = _Writes(self._client, {})
            if doc is None:
                fence.create(guard, _fence_fields(token))
            else:
                fence.batch.update(guard, {"fence": token}, option=fence.precondition(doc))
                fence.effects.append((guard, None))
            try:
                self._send(fence, grace=True)
            except self._conflict:
                continue  # the document changed since the read: perhaps the lost Commit, read again
            except _Lost:
                continue
            raise _NotApplied() from lost
        raise failure or unavailable(TimeoutError("a lost Commit could not be resolved")) from lost

    def _transact(self, refs: list[Any], decide: Callable[[Docs, _Writes, float], T]) -> T:
        """Read `refs` and apply what `decide` writes, atomically (see the module doc). Starts from the
        documents as this instance last saw them, when `decide` then writes every one of them."""
        docs = self._cached(refs)
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, min(0.1, 0.005 * 2**attempt)))  # noqa: S311 (jitter, not crypto)
            if docs is not None:
                writes = _Writes(self._client, docs)
                result = decide(docs, writes, time.time())
                if not writes.covers():
                    docs = None  # it decided on something only remembered: read it
            if docs is None:
                docs = self._read(refs)
                writes = _Writes(self._client, docs)
                result = decide(docs, writes, time.time())
                if not writes:
                    return result
            try:
                self._commit(writes)
            except self._conflict:
                docs = None  # another writer got there first: read again, decide again
                continue
            except _NotApplied as err:
                if not self._may_retry():
                    raise unavailable(err.__cause__ or err) from err
                docs = None
                continue
            return result
        raise unavailable(TimeoutError("contended"))

    def _write(self, write: Callable[[_Writes], None], create: Any = None) -> None:
        """One Commit of writes that depend on no read; `create`, a document that must be absent
        (then a conflict is raised to the caller). Sent once more after a transient error."""
        while True:
            writes = _Writes(self._client, {create.path: None} if create is not None else {})
            write(writes)
            try:
                self._commit(writes)
                return
            except _NotApplied as err:
                if not self._may_retry():
                    raise unavailable(err.__cause__ or err) from err

    # -- claims and counters --

    def _claim_ref(self, key: str) -> Any:
        return self._claims.document(doc_id(key))

    def claim(self, key: str, value: str, ttl: float) -> str | None:
        return self._op(lambda: self._claim(key, value, ttl))

    def _claim(self, key: str, value: str, ttl: float) -> str | None:
        ref = self._claim_ref(key)
        try:
            # Absent, as most claims are: created in one Commit.
            self._write(lambda w: w.set(ref, _claim_fields(value, time.time() + ttl)), create=ref)
            return None
        except self._conflict:
            pass

        # There already: held, or expired but not yet deleted by the TTL policy (then it is ours).
        def decide(docs: Docs, writes: _Writes, now: float) -> str | None:
            doc = docs[ref.path]
            held = doc.live_value(now) if doc is not None else None
            if held is None:
                writes.set(ref, _claim_fields(value, now + ttl))
            return held

        return self._transact([ref], decide)

    def put(self, key: str, value: str, ttl: float) -> None:
        ref = self._claim_ref(key)
        self._op(lambda: self._write(lambda w: w.set(ref, _claim_fields(value, time.time() + ttl))))

    def release(self, key: str, value: str) -> None:
        ref = self._claim_ref(key)

        def decide(docs: Docs, writes: _Writes, now: float) -> None:
            doc = docs[ref.path]
            if doc is not None and doc.live_value(now) == value:
                writes.delete(ref)

        self._op(lambda: self._transact([ref], decide))

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        ref = self._claim_ref(key)

        def decide(docs: Docs, writes: _Writes, now: float) -> bool:
            doc = docs[ref.path]
            if doc is None or doc.live_value(now) != expected:
                return False
            writes.set(ref, _claim_fields(value, now + ttl))
            return True

        return self._op(lambda: self._transact([ref], decide))

    @staticmethod
    def _counted(doc: _Doc | None, ref: Any, window: int, writes: _Writes, now: float) -> tuple[int, int]:
        """One more event in a counter's fixed window: the count and the seconds left in the window."""
        current = doc.live_value(now) if doc is not None else None
        if doc is not None and current is not None and current.isdigit():
            count, expires = int(current) + 1, float(doc.fields["expires"])
        else:
            count, expires = 1, now + window
        writes.set(ref, _claim_fields(str(count), expires))
        return count, max(1, math.ceil(expires - now))

    def hit(self, key: str, window: int) -> tuple[int, int]:
        ref = self._claim_ref(key)

        def decide(docs: Docs, writes: _Writes, now: float) -> tuple[int, int]:
            return self._counted(docs[ref.path], ref, window, writes, now)

        return self._op(lambda: self._transact([ref], decide))

    def delete(self, key: str) -> None:
        ref = self._claim_ref(key)
        self._op(lambda: self._write(lambda w: w.delete(ref)))

    # -- the ledger --

    def _lead_ref(self, lead_id: str) -> Any:
        return self._leads.document(doc_id(lead_id))

    def admit(self, admission: Admission) -> Admitted:
        """Opt-out, claims and counters read at once, then every write in one Commit (two RPCs)."""
        optout = self._optout.document(doc_id(admission.optout)) if admission.optout is not None else None
        claims = [(key, self._claim_ref(key), ttl) for key, ttl in admission.claims]
        counters = [(counter, self._claim_ref(counter.key)) for counter in admission.counters]
        lead = self._lead_ref(admission.record["lead_id"]) if admission.record is not None else None
        # The lease is written whatever was there, so it is not read. The record's document is read in
        # the same BatchGet: its id is new, so a record there is this very admission, whose Commit's
        # answer was lost (admitted); a fence there is what stopped that Commit (written over).
        refs = [ref for _, ref, _ in claims] + [ref for _, ref in counters] + ([optout] if optout else [])
        refs += [lead] if lead is not None else []
        pace = admission.pace
        # Spec 11's pace: a window of slots read in the same BatchGet; a window all full is read past
        # (another round trip only for a backlog longer than the window).
        offset = 0

        def decide(docs: Docs, writes: _Writes, now: float) -> Admitted:
            if lead is not None and (doc := docs[lead.path]) is not None and doc.record(now) is not None:
                return Admitted()
            if optout is not None and docs[optout.path] is not None:
                return Admitted(refused="opted_out")
            held = {}
            for key, ref, _ in claims:
                doc = docs[ref.path]
                value = doc.live_value(now) if doc is not None else None
                if value is not None:
                    held[key] = value
            if held:
                return Admitted(held=held)
            for counter, ref in counters:
                count, left = self._counted(docs[ref.path], ref, counter.window, writes, now)
                if count > counter.limit:
                    # The counts so far stand, as in every store.
                    return Admitted(refused="rate_limited", retry_after=left, counter=counter.key)
            slot, later = None, False
            if pace is not None:
                taken = self._slot_in(pace, offset, docs, writes, now)
                if taken is None:
                    raise _WindowFull  # nothing is committed: the next window is read, all again
                slot, later = taken
            for _, ref, ttl in claims:
                writes.set(ref, _claim_fields(admission.marker, now + ttl))
            if admission.lease is not None:
                key, ttl = admission.lease
                writes.set(self._claim_ref(key), _claim_fields(admission.marker, now + ttl))
            record = admission.deferred if later and admission.deferred is not None else admission.record
            if record is not None and lead is not None:
                writes.set(lead, _lead_fields(record))  # created, or written over a fence
            if optout is not None:
                writes.still_absent(optout)  # a number opted out since the read is not admitted
            return Admitted(slot=slot, later=later)

        while True:
            window = self._slot_refs(pace, offset) if pace is not None else []
            try:
                return self._op(lambda: self._transact(refs + window, decide))  # noqa: B023 (called at once)
            except _WindowFull:
                offset += _PACE_WINDOW
            if offset > PACE_HORIZON:
                raise unavailable(OverflowError("the pace's backlog is too long"))

    def _slot_refs(self, pace: Pace, offset: int) -> list[Any]:
        first = pace.first + offset
        return [self._claim_ref(pace.slot_key(i)) for i in range(first, first + _PACE_WINDOW)]

    def _slot_in(self, pace: Pace, offset: int, docs: Docs, writes: _Writes, now: float) -> tuple[float, bool] | None:
        """The first slot of the window with room, its counter moved on (one document per popup per slot:
        each takes at most `limit` writes, then is never written again); None when all are full."""
        first = pace.first + offset
        for index in range(first, first + _PACE_WINDOW):
            ref = self._claim_ref(pace.slot_key(index))
            doc = docs.get(ref.path)
            current = doc.live_value(now) if doc is not None else None
            count = int(current) if current is not None and current.isdigit() else 0
            if count < pace.limit:
                writes.set(ref, _claim_fields(str(count + 1), now + pace.ttl(index)))
                return pace.start(index), index > pace.first
        return None

    def take_slot(self, pace: Pace) -> float:
        offset = 0
        while offset <= PACE_HORIZON:
            window = self._slot_refs(pace, offset)

            def decide(docs: Docs, writes: _Writes, now: float) -> float | None:
                taken = self._slot_in(pace, offset, docs, writes, now)  # noqa: B023 (called at once)
                return taken[0] if taken is not None else None

            slot = self._op(lambda: self._transact(window, decide))  # noqa: B023 (called at once)
            if slot is not None:
                return slot
            offset += _PACE_WINDOW
        raise unavailable(OverflowError("the pace's backlog is too long"))

    def finish(self, finish: Finish) -> None:
        """One Commit when this instance made the admission (its update times are the preconditions),
        else a read and a Commit."""
        lead = self._lead_ref(finish.lead_id)
        claims = [(self._claim_ref(key), ttl) for key, ttl in finish.claims]
        lease = self._claim_ref(finish.lease) if finish.lease is not None else None
        refs = [lead] + [ref for ref, _ in claims] + ([lease] if lease is not None else [])

        def decide(docs: Docs, writes: _Writes, now: float) -> None:
            doc = docs[lead.path]
            if finish.record is None:
                if doc is not None:
                    writes.delete(lead)
            else:
                stored = doc.record(now) if doc is not None else None
                if stored is not None and stored.get("version") == finish.expected_version:
                    writes.set(lead, _lead_fields(finish.record))
            for ref, ttl in claims:
                doc = docs[ref.path]
                if doc is None or doc.live_value(now) != finish.marker:
                    continue  # expired, or someone else's now
                if finish.answer is None:
                    writes.delete(ref)
                else:
                    writes.set(ref, _claim_fields(finish.answer, now + ttl))
            if lease is not None:
                doc = docs[lease.path]
                if doc is not None and doc.live_value(now) == finish.marker:
                    writes.delete(lease)

        self._op(lambda: self._transact(refs, decide))

    def get_lead(self, lead_id: str) -> dict[str, Any] | None:
        ref = self._lead_ref(lead_id)
        doc = self._op(lambda: self._read([ref]))[ref.path]
        return doc.record(time.time()) if doc is not None else None

    def save_lead(self, record: Mapping[str, Any], expected_version: int | None) -> bool:
        return self._op(lambda: self._save_lead(record, expected_version))

    def _save_lead(self, record: Mapping[str, Any], expected_version: int | None) -> bool:
        ref = self._lead_ref(record["lead_id"])
        if expected_version is None:
            try:
                # New, as most are: created in one Commit.
                self._write(lambda w: w.set(ref, _lead_fields(record)), create=ref)
                return True
            except self._conflict:
                pass  # there, but perhaps expired and not yet deleted (or a fence): look

        def decide(docs: Docs, writes: _Writes, now: float) -> bool:
            doc = docs[ref.path]
            stored = doc.record(now) if doc is not None else None
            if (stored is None) != (expected_version is None):
                return False
            if stored is not None and stored.get("version") != expected_version:
                return False
            writes.set(ref, _lead_fields(record))
            return True

        return self._transact([ref], decide)

    def _query(self, query: Any) -> list[Any]:
        """Every document of one query. A stream that breaks midway is a transient error like any other:
        read again from the start once, then StoreUnavailable (never a crash of the caller)."""

        def call(**kwargs: Any) -> list[Any]:
            return list(query.stream(**kwargs))

        return self._op(lambda: self._rpc(call))

    @staticmethod
    def _records(snapshots: list[Any], now: float) -> list[dict[str, Any]]:
        found = []
        for snapshot in snapshots:
            record = _record_of(snapshot.to_dict() or {}, now)
            if record is not None:
                found.append(record)
        return found

    def due_leads(self, now: float, limit: int) -> list[dict[str, Any]]:
        # A range filter leaves out documents whose due_at is null: exactly the leads not due.
        query = self._leads.where(filter=self._filter("due_at", "<=", float(now))).order_by("due_at").limit(limit)
        due = self._records(self._query(query), time.time())
        return [r for r in due if r.get("due_at") is not None and r["due_at"] <= now]

    def scan_leads(
        self, *, since: float | None = None, state: str | None = None, route: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Page by page, oldest first. With `state`, the composite index state + received_at serves it;
        `route` is filtered here (most leads share a few routes: an index would buy little)."""
        query: Any = self._leads
        if state is not None:
            query = query.where(filter=self._filter("state", "==", state))
        if since is not None:
            query = query.where(filter=self._filter("received_at", ">=", _timestamp(since)))
        query = query.order_by("received_at")
        last = None
        while True:
            page = query.limit(_PAGE) if last is None else query.start_after(last).limit(_PAGE)
            snapshots = self._query(page)
            for record in self._records(snapshots, time.time()):
                if since is not None and record["received_ts"] < since:
                    continue  # received_at is rounded to the microsecond
                if route is None or record.get("route") == route:
                    yield record
            if len(snapshots) < _PAGE:
                return
            last = snapshots[-1]

    def leads_by_phone(self, phone_hash: str) -> list[dict[str, Any]]:
        query = self._leads.where(filter=self._filter("phone_hash", "==", phone_hash))
        found = self._records(self._query(query), time.time())
        return sorted(found, key=lambda r: r["received_ts"])

    def delete_lead(self, lead_id: str) -> None:
        ref = self._lead_ref(lead_id)
        self._op(lambda: self._write(lambda w: w.delete(ref)))

    def set_optout(self, phone_hash: str, on: bool) -> None:
        ref = self._optout.document(doc_id(phone_hash))
        if on:
            self._op(lambda: self._write(lambda w: w.set(ref, {"since": _timestamp(time.time())})))
        else:
            self._op(lambda: self._write(lambda w: w.delete(ref)))

    def is_opted_out(self, phone_hash: str) -> bool:
        ref = self._optout.document(doc_id(phone_hash))
        return self._op(lambda: self._read([ref]))[ref.path] is not None

    # -- the sweeper's heartbeat --

    def write_heartbeat(self, heartbeat: Heartbeat) -> None:
        ref = self._claim_ref(HEARTBEAT)
        fields = _claim_fields(heartbeat.dumps(), time.time() + HEARTBEAT_SECONDS)
        self._op(lambda: self._write(lambda w: w.set(ref, fields)))

    def read_heartbeat(self) -> Heartbeat | None:
        ref = self._claim_ref(HEARTBEAT)
        doc = self._op(lambda: self._read([ref]))[ref.path]
        return Heartbeat.loads(doc.live_value(time.time()) if doc is not None else None)
