"""firestore:// and firestore://PROJECT/DATABASE: serverless, shared by every instance, no VPC (spec 8).

Round trips (RPCs) per operation:
- `admit`: one transaction of two RPCs: a BatchGetDocuments that also begins the transaction (opt-out,
  claims, counters, lease in one read), then the Commit (or a Rollback when nothing is written).
  Firestore answers contention with ABORTED: the transaction is retried, at most five attempts.
- `finish`: one Commit (no transaction) when this instance made the admission: every write carries
  the update time that instance saw as its precondition, so any change in between fails the whole
  batch, which is then redone as a two-RPC transaction. A placed lead thus costs three RPCs.
- `claim`: one create; two more when the key exists. `put`, `delete`, `delete_lead`, `set_optout`,
  `get_lead`, `is_opted_out`: one. `release`, `replace`, `hit`: a two-RPC transaction. `save_lead`: one
  create for a new record, else a transaction. Queries: one RunQuery per page of 500.

Data model (the deploy makes the TTL policies on `expires_at` and the composite index state +
received_at for exactly these names): `formcall_claims` holds claims and counters (`value`,
`expires` epoch seconds, `expires_at` timestamp); `formcall_leads` one document per lead, the record as
its `json` plus the fields queries use; `formcall_optout` one document per phone hash. Expiry is
checked here, against `expires`: Firestore's TTL deletes up to a day late.

Every RPC has the short timeout and no retry, so a dead or hung store is a 503 within seconds. The
client library is imported by `FirestoreStore()` only: cold start with memory:// never pays for it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from .base import Admission, Admitted, Finish, unavailable

CLAIMS = "formcall_claims"
LEADS = "formcall_leads"
OPTOUT = "formcall_optout"
DEFAULT_DATABASE = "(default)"
MAX_ATTEMPTS = 5  # the client library's own default for a contended transaction
_PAGE = 500
_KNOWN_MAX = 4096  # documents whose last update time this instance remembers (for `finish`)

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


@dataclass(frozen=True)
class _Known:
    """What this instance last wrote to a document: enough to write it again with a precondition."""

    update_time: Any
    value: str | None = None  # claims
    expires: float = math.inf
    version: int | None = None  # leads


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
    }
    if isinstance(expires, (int, float)):
        fields["expires"] = float(expires)
        fields["expires_at"] = _timestamp(float(expires))
    return fields


def _claim_fields(value: str, expires: float) -> dict[str, Any]:
    return {"value": value, "expires": expires, "expires_at": _timestamp(expires)}


class _Writes:
    """Writes gathered for one commit, remembering what each one leaves in its document."""

    def __init__(self, client: Any) -> None:
        self.batch = client.batch()
        self.client = client
        # per write, in order: (document path, what we know of it afterwards; None when deleted)
        self.effects: list[tuple[str, _Known | None]] = []

    def __bool__(self) -> bool:
        return bool(self.effects)

    def set(self, ref: Any, fields: dict[str, Any], known: _Known, precondition: Any = None) -> None:
        if precondition is None:
            self.batch.set(ref, fields)
        else:
            self.batch.update(ref, fields, option=self.client.write_option(last_update_time=precondition))
        self.effects.append((ref._document_path, known))

    def create(self, ref: Any, fields: dict[str, Any], known: _Known) -> None:
        self.batch.create(ref, fields)
        self.effects.append((ref._document_path, known))

    def delete(self, ref: Any, precondition: Any = None) -> None:
        option = self.client.write_option(last_update_time=precondition) if precondition is not None else None
        self.batch.delete(ref, option=option)
        self.effects.append((ref._document_path, None))


class FirestoreStore:
    """Claims, counters and the lead ledger in Firestore; every operation atomic (see the module doc)."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        project, database = parse_url(url)
        # Imported here: only deployments that use Firestore pay for it.
        import grpc  # type: ignore[import-untyped]
        from google.api_core import exceptions
        from google.auth import exceptions as auth_exceptions
        from google.cloud import firestore
        from google.cloud.firestore_v1 import _helpers
        from google.cloud.firestore_v1.base_query import FieldFilter

        self.round_trips = 0
        self._timeout = timeout
        self._count_lock = threading.Lock()
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._known_lock = threading.Lock()
        self._exceptions = exceptions
        self._errors: tuple[type[BaseException], ...] = (
            exceptions.GoogleAPIError,
            auth_exceptions.GoogleAuthError,
            grpc.RpcError,
            OSError,
        )
        self._decode: Any = _helpers.decode_dict
        self._filter = FieldFilter
        try:
            # FIRESTORE_EMULATOR_HOST, when set, is honoured by the client itself.
            self._client: Any = firestore.Client(project=project, database=database)
        except self._errors as err:  # no project or credentials found
            raise unavailable(err) from err
        # The generated API client: one RPC per call, with our timeout and no retry (the library's own
        # Transaction begins and commits with a 60 s default and retries for a minute).
        self._api: Any = self._client._firestore_api
        self._database: str = self._client._database_string
        self._claims = self._client.collection(CLAIMS)
        self._leads = self._client.collection(LEADS)
        self._optout = self._client.collection(OPTOUT)

    # -- RPCs --

    def _rpc(self, call: Callable[..., T], *args: Any, expect: tuple[type[BaseException], ...] = (),
             **kwargs: Any) -> T:  # fmt: skip
        """One round trip; `expect` are the answers the caller handles, anything else is a 503."""
        with self._count_lock:
            self.round_trips += 1
        try:
            return call(*args, retry=None, timeout=self._timeout, **kwargs)
        except expect:
            raise
        except self._errors as err:
            raise unavailable(err) from err

    def _metadata(self) -> Any:
        return self._client._rpc_metadata

    def _read(self, refs: list[Any], transaction: bytes | bool = False) -> tuple[dict[str, _Doc | None], bytes]:
        """The documents at `refs` in one BatchGetDocuments; with `transaction`, it also begins one
        (True, or the id of an aborted attempt to retry) and its id comes back."""
        paths = list(dict.fromkeys(ref._document_path for ref in refs))
        request: dict[str, Any] = {"database": self._database, "documents": paths}
        if transaction is not False:
            read_write = {"retry_transaction": transaction} if isinstance(transaction, bytes) else {}
            request["new_transaction"] = {"read_write": read_write}

        def call(**kwargs: Any) -> list[Any]:
            return list(self._api.batch_get_documents(request=request, metadata=self._metadata(), **kwargs))

        docs: dict[str, _Doc | None] = dict.fromkeys(paths)
        txn = b""
        expect = (self._exceptions.Aborted,) if transaction is not False else ()
        for response in self._rpc(call, expect=expect):
            if response.transaction:
                txn = bytes(response.transaction)
            if response.found and response.found.name:
                found = response.found
                docs[found.name] = _Doc(self._decode(found.fields, self._client), found.update_time)
        return docs, txn

    def _commit(self, writes: _Writes, transaction: bytes | None = None,
                expect: tuple[type[BaseException], ...] = ()) -> None:  # fmt: skip
        request: dict[str, Any] = {"database": self._database, "writes": writes.batch._write_pbs}
        if transaction:
            request["transaction"] = transaction

        def call(**kwargs: Any) -> Any:
            return self._api.commit(request=request, metadata=self._metadata(), **kwargs)

        response = self._rpc(call, expect=expect)
        results = list(response.write_results)
        with self._known_lock:
            for (path, known), result in zip(writes.effects, results, strict=False):
                self._known.pop(path, None)
                if known is not None and result.update_time:
                    self._known[path] = _Known(result.update_time, known.value, known.expires, known.version)
            while len(self._known) > _KNOWN_MAX:
                self._known.popitem(last=False)

    def _rollback(self, transaction: bytes) -> None:
        def call(**kwargs: Any) -> Any:
            request = {"database": self._database, "transaction": transaction}
            return self._api.rollback(request=request, metadata=self._metadata(), **kwargs)

        self._rpc(call)

    def _transact(self, refs: list[Any], decide: Callable[[dict[str, _Doc | None], _Writes, float], T]) -> T:
        """Read `refs` and write what `decide` adds, atomically; retried when Firestore aborts it."""
        retry: bytes | bool = True
        for _ in range(MAX_ATTEMPTS):
            try:
                docs, txn = self._read(refs, transaction=retry)
            except self._exceptions.Aborted:
                continue  # contention on a lock: try again, as the library does
            writes = _Writes(self._client)
            result = decide(docs, writes, time.time())
            if not writes:
                if txn:
                    self._rollback(txn)  # frees the read locks now, not when the transaction times out
                return result
            try:
                self._commit(writes, txn, expect=(self._exceptions.Aborted,))
            except self._exceptions.Aborted:
                retry = txn or True
                continue
            return result
        raise unavailable(TimeoutError("transaction contended"))

    def _known_of(self, path: str) -> _Known | None:
        with self._known_lock:
            return self._known.get(path)

    # -- claims and counters --

    def _claim_ref(self, key: str) -> Any:
        return self._claims.document(doc_id(key))

    def claim(self, key: str, value: str, ttl: float) -> str | None:
        ref = self._claim_ref(key)
        expires = time.time() + ttl
        writes = _Writes(self._client)
        writes.create(ref, _claim_fields(value, expires), _Known(None, value, expires))
        try:
            self._commit(writes, expect=(self._exceptions.AlreadyExists,))
            return None
        except self._exceptions.AlreadyExists:
            pass

        # There already: held, or expired but not yet deleted by the TTL policy (then it is ours).
        def decide(docs: dict[str, _Doc | None], writes: _Writes, now: float) -> str | None:
            doc = docs[ref._document_path]
            held = doc.live_value(now) if doc is not None else None
            if held is not None:
                return held
            writes.set(ref, _claim_fields(value, now + ttl), _Known(None, value, now + ttl))
            return None

        return self._transact([ref], decide)

    def put(self, key: str, value: str, ttl: float) -> None:
        ref = self._claim_ref(key)
        expires = time.time() + ttl
        writes = _Writes(self._client)
        writes.set(ref, _claim_fields(value, expires), _Known(None, value, expires))
        self._commit(writes)

    def release(self, key: str, value: str) -> None:
        ref = self._claim_ref(key)

        def decide(docs: dict[str, _Doc | None], writes: _Writes, now: float) -> None:
            doc = docs[ref._document_path]
            if doc is not None and doc.live_value(now) == value:
                writes.delete(ref)

        self._transact([ref], decide)

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        ref = self._claim_ref(key)

        def decide(docs: dict[str, _Doc | None], writes: _Writes, now: float) -> bool:
            doc = docs[ref._document_path]
            if doc is None or doc.live_value(now) != expected:
                return False
            writes.set(ref, _claim_fields(value, now + ttl), _Known(None, value, now + ttl))
            return True

        return self._transact([ref], decide)

    def _count(self, doc: _Doc | None, ref: Any, window: int, writes: _Writes, now: float) -> tuple[int, int]:
        """One more event in a counter's fixed window (inside a transaction that read `doc`)."""
        current = doc.live_value(now) if doc is not None else None
        if current is not None and doc is not None and current.isdigit():
            count, expires = int(current) + 1, float(doc.fields["expires"])
        else:
            count, expires = 1, now + window
        writes.set(ref, _claim_fields(str(count), expires), _Known(None, str(count), expires))
        return count, max(1, math.ceil(expires - now))

    def hit(self, key: str, window: int) -> tuple[int, int]:
        ref = self._claim_ref(key)

        def decide(docs: dict[str, _Doc | None], writes: _Writes, now: float) -> tuple[int, int]:
            return self._count(docs[ref._document_path], ref, window, writes, now)

        return self._transact([ref], decide)

    def delete(self, key: str) -> None:
        writes = _Writes(self._client)
        writes.delete(self._claim_ref(key))
        self._commit(writes)

    # -- the ledger --

    def admit(self, admission: Admission) -> Admitted:
        """Opt-out, claims, counters, then every write, in one transaction (two RPCs; see the module doc)."""
        optout = self._optout.document(doc_id(admission.optout)) if admission.optout is not None else None
        claims = [(key, self._claim_ref(key), ttl) for key, ttl in admission.claims]
        counters = [(counter, self._claim_ref(counter.key)) for counter in admission.counters]
        lease = (self._claim_ref(admission.lease[0]), admission.lease[1]) if admission.lease is not None else None
        # The lease is written whatever it held, so it is not read (nor locked).
        refs = [ref for _, ref, _ in claims] + [ref for _, ref in counters] + ([optout] if optout else [])

        def decide(docs: dict[str, _Doc | None], writes: _Writes, now: float) -> Admitted:
            if optout is not None and docs[optout._document_path] is not None:
                return Admitted(refused="opted_out")
            held = {}
            for key, ref, _ in claims:
                doc = docs[ref._document_path]
                value = doc.live_value(now) if doc is not None else None
                if value is not None:
                    held[key] = value
            if held:
                return Admitted(held=held)
            for counter, ref in counters:
                count, left = self._count(docs[ref._document_path], ref, counter.window, writes, now)
                if count > counter.limit:
                    # The counts so far stand, as they do in every store.
                    return Admitted(refused="rate_limited", retry_after=left, counter=counter.key)
            for _, ref, ttl in claims:
                writes.set(ref, _claim_fields(admission.marker, now + ttl), _Known(None, admission.marker, now + ttl))
            if lease is not None:
                ref, ttl = lease
                writes.set(ref, _claim_fields(admission.marker, now + ttl), _Known(None, admission.marker, now + ttl))
            if admission.record is not None:
                record = admission.record
                writes.set(self._leads.document(doc_id(record["lead_id"])), _lead_fields(record),
                           _Known(None, expires=_expires(record), version=int(record.get("version") or 0)))  # fmt: skip
            return Admitted()

        return self._transact(refs, decide)

    def finish(self, finish: Finish) -> None:
        """One precondition Commit when this instance holds the update times, else one transaction."""
        if self._finish_known(finish):
            return
        lead = self._leads.document(doc_id(finish.lead_id))
        claims = [(self._claim_ref(key), ttl) for key, ttl in finish.claims]
        lease = self._claim_ref(finish.lease) if finish.lease is not None else None
        refs = [lead] + [ref for ref, _ in claims] + ([lease] if lease is not None else [])

        def decide(docs: dict[str, _Doc | None], writes: _Writes, now: float) -> None:
            if finish.record is None:
                writes.delete(lead)
            else:
                doc = docs[lead._document_path]
                stored = doc.record(now) if doc is not None else None
                if stored is not None and stored.get("version") == finish.expected_version:
                    self._set_lead(writes, lead, finish.record)
            for ref, ttl in claims:
                doc = docs[ref._document_path]
                if doc is None or doc.live_value(now) != finish.marker:
                    continue
                if finish.answer is None:
                    writes.delete(ref)
                else:
                    writes.set(ref, _claim_fields(finish.answer, now + ttl), _Known(None, finish.answer, now + ttl))
            if lease is not None:
                doc = docs[lease._document_path]
                if doc is not None and doc.live_value(now) == finish.marker:
                    writes.delete(lease)

        self._transact(refs, decide)

    def _finish_known(self, finish: Finish) -> bool:
        """`finish` as one Commit whose preconditions are the update times this instance wrote; False
        when it does not know them all, or when a precondition failed (nothing was written then)."""
        now = time.time()
        writes = _Writes(self._client)
        lead = self._leads.document(doc_id(finish.lead_id))
        if finish.record is None:
            writes.delete(lead)
        else:
            known = self._known_of(lead._document_path)
            if known is None or known.version != finish.expected_version or known.expires <= now:
                return False
            self._set_lead(writes, lead, finish.record, precondition=known.update_time)
        mine: list[tuple[Any, float | None]] = [(self._claim_ref(key), ttl) for key, ttl in finish.claims]
        if finish.lease is not None:
            mine.append((self._claim_ref(finish.lease), None))
        for ref, ttl in mine:
            known = self._known_of(ref._document_path)
            if known is None or known.value != finish.marker:
                return False
            if known.expires <= now:
                continue  # expired: no longer ours, left alone as every store does
            if ttl is None or finish.answer is None:
                writes.delete(ref, precondition=known.update_time)
            else:
                fields = _claim_fields(finish.answer, now + ttl)
                writes.set(ref, fields, _Known(None, finish.answer, now + ttl), precondition=known.update_time)
        failed = (self._exceptions.FailedPrecondition, self._exceptions.NotFound)
        try:
            self._commit(writes, expect=failed)
        except failed:
            return False
        return True

    def _set_lead(self, writes: _Writes, ref: Any, record: Mapping[str, Any], precondition: Any = None) -> None:
        known = _Known(None, expires=_expires(record), version=int(record.get("version") or 0))
        writes.set(ref, _lead_fields(record), known, precondition=precondition)

    def get_lead(self, lead_id: str) -> dict[str, Any] | None:
        ref = self._leads.document(doc_id(lead_id))
        docs, _ = self._read([ref])
        doc = docs[ref._document_path]
        return doc.record(time.time()) if doc is not None else None

    def save_lead(self, record: Mapping[str, Any], expected_version: int | None) -> bool:
        ref = self._leads.document(doc_id(record["lead_id"]))
        if expected_version is None:
            writes = _Writes(self._client)
            known = _Known(None, expires=_expires(record), version=int(record.get("version") or 0))
            writes.create(ref, _lead_fields(record), known)
            try:
                self._commit(writes, expect=(self._exceptions.AlreadyExists,))
                return True
            except self._exceptions.AlreadyExists:
                pass  # there, but perhaps expired and not yet deleted: look

        def decide(docs: dict[str, _Doc | None], writes: _Writes, now: float) -> bool:
            doc = docs[ref._document_path]
            stored = doc.record(now) if doc is not None else None
            if (stored is None) != (expected_version is None):
                return False
            if stored is not None and stored.get("version") != expected_version:
                return False
            self._set_lead(writes, ref, record)
            return True

        return self._transact([ref], decide)

    def _query(self, query: Any) -> list[Any]:
        def call(**kwargs: Any) -> list[Any]:
            return list(query.stream(**kwargs))

        return self._rpc(call)

    def _records(self, snapshots: list[Any], now: float) -> list[dict[str, Any]]:
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
        `route` is filtered here (a route holds most leads, an index would buy little)."""
        query: Any = self._leads
        if state is not None:
            query = query.where(filter=self._filter("state", "==", state))
        if since is not None:
            query = query.where(filter=self._filter("received_at", ">=", _timestamp(since)))
        query = query.order_by("received_at")
        last = None
        while True:
            page = query.limit(_PAGE)
            if last is not None:
                page = page.start_after(last)
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
        writes = _Writes(self._client)
        writes.delete(self._leads.document(doc_id(lead_id)))
        self._commit(writes)

    def set_optout(self, phone_hash: str, on: bool) -> None:
        writes = _Writes(self._client)
        ref = self._optout.document(doc_id(phone_hash))
        if on:
            writes.set(ref, {"since": _timestamp(time.time())}, _Known(None))
        else:
            writes.delete(ref)
        self._commit(writes)

    def is_opted_out(self, phone_hash: str) -> bool:
        ref = self._optout.document(doc_id(phone_hash))
        docs, _ = self._read([ref])
        return docs[ref._document_path] is not None


def _expires(record: Mapping[str, Any]) -> float:
    expires = record.get("expires_at")
    return float(expires) if isinstance(expires, (int, float)) else math.inf
