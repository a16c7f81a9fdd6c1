"""Outgoing clients over loopback: the shared transport, signed outcome webhooks, and HubSpot's CRM API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from formcall_webhook import outcomes
from formcall_webhook.clients import hubspot, outgoing
from formcall_webhook.clients.http import Answer, Pool, TransportError, make_pool, send
from formcall_webhook.clients.hubspot import HubSpotClient
from formcall_webhook.clients.outgoing import PostResult, deliver
from formcall_webhook.signing import sign
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.loopback import LoopbackTCP
from tests.fakes.receiver import FakeReceiver

KEY = b"outcome-secret-key-of-32-bytes!!"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
HUBSPOT_TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
LEAD: dict[str, Any] = {
    "lead_id": "ld_01JDXYZ",
    "route": "hubspot",
    "uuid": "a93460bbf8402e15b9b0afddc05d5e8d",
    "call_status": "Conectada",
    "connected": True,
    "successful": True,
    "duration_customer": 95,
    "call_at": "2019-04-02T10:05:03-03:00",
    "received_at": "2019-04-02T13:04:40Z",
}
PAYLOAD = outcomes.outcome_payload(LEAD)
MSG_ID = "outcome_ld_01JDXYZ"


@pytest.fixture(scope="module")
def pool() -> Pool:
    return make_pool(maxsize=4)


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    fake = FakeReceiver(SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture
def crm() -> Iterator[FakeHubSpot]:
    fake = FakeHubSpot(HUBSPOT_TOKEN, readonly_tokens=("pat-readonly",)).start()
    yield fake
    fake.stop()


# ---- the transport ---------------------------------------------------------------------------


def test_send_caps_the_body(pool: Pool) -> None:
    big = b"x" * 300_000
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(big)}\r\nX-Thing: Yes\r\n\r\n".encode()
    with LoopbackTCP(lambda conn: conn.sendall(head + big)) as server:
        answer = send(pool, "GET", server.url, headers={}, body=None, timeout=30)
        assert (answer.status, len(answer.body), answer.truncated) == (200, 256 * 1024, True)
        assert answer.headers["x-thing"] == "Yes"
        small = send(pool, "GET", server.url, headers={}, body=None, timeout=30, max_bytes=len(big))
        assert (len(small.body), small.truncated) == (len(big), False)


@pytest.mark.parametrize(
    ("head", "drop", "count"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"x", 100),  # the body, a byte at a time
        (b"HTTP/1.1 200 OK\r\n", b"X-Drip: y\r\n", 90),  # the head, a header line at a time: it never ends
    ],
    ids=["body", "head"],
)
def test_send_times_out_on_a_server_that_drips(pool: Pool, head: bytes, drop: bytes, count: int) -> None:
    def drip(conn: socket.socket) -> None:
        # A piece every 0.3 s: each read is quick, the whole answer would take about 30 s.
        conn.sendall(head)
        for _ in range(count):
            conn.sendall(drop)
            if server.stopping.wait(0.3):
                return

    with LoopbackTCP(drip) as server:
        started = time.monotonic()
        with pytest.raises(TransportError, match="timed out") as caught:
            send(pool, "GET", server.url, headers={}, body=None, timeout=0.6)
        # The total deadline, head included, ended it, not the answer; a busy machine may add seconds, not 20.
        assert time.monotonic() - started < 10
        assert caught.value.sent


def test_send_refused_was_never_sent(pool: Pool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransportError) as caught:
        send(pool, "POST", f"http://127.0.0.1:{port}/", headers={}, body=b"{}", timeout=1)
    assert not caught.value.sent


def test_a_body_cut_short_is_a_failure_with_its_partial_bytes(pool: Pool) -> None:
    # The server closes (FIN, not a reset) after 10 of the 100 bytes it announced.
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"0123456789"
    with LoopbackTCP(lambda conn: conn.sendall(cut)) as server, pytest.raises(TransportError) as caught:
        send(pool, "GET", server.url, headers={}, body=None, timeout=30)
    assert (caught.value.sent, caught.value.timed_out, caught.value.cause) == (True, False, "IncompleteRead")
    assert caught.value.partial == b"0123456789"


def test_a_url_it_cannot_send_to_was_never_sent(pool: Pool) -> None:
    for url in ("ftp://127.0.0.1/", "http:///nohost", "http://127.0.0.1:notaport/"):
        with pytest.raises(TransportError) as caught:
            send(pool, "GET", url, headers={}, body=None, timeout=1)
        assert not caught.value.sent


# ---- the pool: kept-alive connections ----------------------------------------------------------


class KeepAliveServer(LoopbackTCP):
    """Raw HTTP/1.1 that answers every request of a connection on it until the client closes it: the
    body echoes the request's path. It counts connections; `/chunked` answers in chunks, `/big` with
    10,000 bytes, `/close` with Connection: close, `/hang` never (until released), `/bye` answers and
    then closes the connection without saying so."""

    def __init__(self) -> None:
        super().__init__(self.serve, read_request=False)
        self.connections = 0
        self.release = threading.Event()
        self.closed_unsaid = threading.Event()
        self._count = threading.Lock()

    def serve(self, conn: socket.socket) -> None:
        with self._count:
            self.connections += 1
        buffered = b""
        while True:
            while b"\r\n\r\n" not in buffered:
                data = conn.recv(65536)
                if not data:
                    return
                buffered += data
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            path = lines[0].split(" ")[1]
            length = next(
                (int(v) for k, _, v in (x.partition(": ") for x in lines[1:]) if k.lower() == "content-length"), 0
            )
            while len(buffered) < length:
                buffered += conn.recv(65536)
            buffered = buffered[length:]
            body = path.encode()
            if path == "/hang":
                self.release.wait(30)
                return
            if path == "/chunked":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n/chu\r\n4\r\nnked\r\n0\r\n\r\n"
                )
                continue
            if path == "/big":
                body = b"b" * 10_000
            extra = b"Connection: close\r\n" if path == "/close" else b""
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + extra + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            if path in ("/close", "/bye"):
                conn.shutdown(socket.SHUT_RDWR)
                self.closed_unsaid.set()
                return


@pytest.fixture
def keepalive() -> Iterator[KeepAliveServer]:
    server = KeepAliveServer().start()
    yield server
    server.release.set()
    server.stop()


def test_a_kept_alive_connection_is_reused(keepalive: KeepAliveServer) -> None:
    pool = make_pool(maxsize=4)
    key = ("http", "127.0.0.1", keepalive.port)
    for path in ("/a", "/chunked", "/b"):
        answer = send(pool, "POST", keepalive.base_url + path, headers={}, body=b'{"x": 1}', timeout=30)
        assert (answer.status, answer.body, answer.truncated) == (200, path.encode(), False)
        assert pool.idle(key) == 1
    assert keepalive.connections == 1


def test_no_reuse_after_a_truncated_answer(keepalive: KeepAliveServer) -> None:
    pool = make_pool(maxsize=4)
    big = send(pool, "GET", keepalive.base_url + "/big", headers={}, body=None, timeout=30, max_bytes=100)
    assert (big.body, big.truncated) == (b"b" * 100, True)
    assert pool.idle(("http", "127.0.0.1", keepalive.port)) == 0
    assert send(pool, "GET", keepalive.base_url + "/a", headers={}, body=None, timeout=30).body == b"/a"
    assert keepalive.connections == 2


def test_no_reuse_after_a_failed_answer(keepalive: KeepAliveServer) -> None:
    pool = make_pool(maxsize=4)
    assert send(pool, "GET", keepalive.base_url + "/a", headers={}, body=None, timeout=30).body == b"/a"
    with pytest.raises(TransportError) as caught:
        send(pool, "GET", keepalive.base_url + "/hang", headers={}, body=None, timeout=0.3)
    assert caught.value.timed_out and caught.value.sent
    assert pool.idle(("http", "127.0.0.1", keepalive.port)) == 0
    assert send(pool, "GET", keepalive.base_url + "/b", headers={}, body=None, timeout=30).body == b"/b"
    assert keepalive.connections == 2


def test_a_connection_the_server_closes_is_not_reused(keepalive: KeepAliveServer) -> None:
    pool = make_pool(maxsize=4)
    assert send(pool, "GET", keepalive.base_url + "/close", headers={}, body=None, timeout=30).body == b"/close"
    assert pool.idle(("http", "127.0.0.1", keepalive.port)) == 0  # it said Connection: close
    keepalive.closed_unsaid.clear()
    assert send(pool, "GET", keepalive.base_url + "/bye", headers={}, body=None, timeout=30).body == b"/bye"
    assert keepalive.closed_unsaid.wait(30)
    # Kept, then closed by the server while idle: the next request sees it closed and opens another.
    assert send(pool, "GET", keepalive.base_url + "/c", headers={}, body=None, timeout=30).body == b"/c"
    assert keepalive.connections == 3


def test_the_pool_is_shared_by_threads(keepalive: KeepAliveServer) -> None:
    pool = make_pool(maxsize=4)
    failures: list[str] = []

    def client(n: int) -> None:
        for i in range(25):
            path = f"/t{n}-{i}"
            try:
                body = send(pool, "GET", keepalive.base_url + path, headers={}, body=None, timeout=30).body
            except TransportError as err:
                failures.append(f"{path}: {err.reason}")
                continue
            if body != path.encode():
                failures.append(f"{path} answered {body!r}")  # another thread's answer

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert pool.idle(("http", "127.0.0.1", keepalive.port)) <= 4
    assert keepalive.connections <= 8 * 25 // 2  # connections were reused, not one per request


# ---- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A CA of the test's own and a certificate it signed for 127.0.0.1 only: (ca.pem, cert.pem, key.pem)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
        .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(2).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tls")
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture
def tls_server(tls_files: tuple[Path, Path, Path]) -> Iterator[LoopbackTCP]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files[1], tls_files[2])

    def serve(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:  # a refused handshake raises: the end
            request = b""
            while b"\r\n\r\n" not in request:
                data = tls.recv(65536)
                if not data:
                    return
                request += data
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret")

    server = LoopbackTCP(serve, read_request=False).start()
    yield server
    server.stop()


def test_tls_is_verified_against_the_ca_bundle(tls_files: tuple[Path, Path, Path], tls_server: LoopbackTCP) -> None:
    url = f"https://127.0.0.1:{tls_server.port}/"
    answer = send(make_pool(str(tls_files[0])), "GET", url, headers={}, body=None, timeout=30)
    assert (answer.status, answer.body) == (200, b"secret")
    context = make_pool(str(tls_files[0])).tls_context()
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)


def test_tls_refuses_a_certificate_certifi_does_not_trust(tls_server: LoopbackTCP) -> None:
    with pytest.raises(TransportError) as caught:
        send(make_pool(), "GET", f"https://127.0.0.1:{tls_server.port}/", headers={}, body=None, timeout=30)
    # Refused in the handshake, before a byte of the request: the server cannot have acted.
    assert (caught.value.sent, caught.value.cause) == (False, "SSLCertVerificationError")


def test_tls_checks_the_hostname(tls_files: tuple[Path, Path, Path], tls_server: LoopbackTCP) -> None:
    # The certificate names 127.0.0.1 only; "localhost" reaches the same server but is not its name.
    with pytest.raises(TransportError) as caught:
        send(
            make_pool(str(tls_files[0])), "GET", f"https://localhost:{tls_server.port}/", headers={}, body=None,
            timeout=30,
        )  # fmt: skip
    assert (caught.value.sent, caught.value.cause) == (False, "SSLCertVerificationError")


# ---- Standard Webhooks signing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [SECRET, SECRET.removeprefix("whsec_"), SECRET.rstrip("="), " " + SECRET.removeprefix("whsec_").rstrip("=")],
)
def test_signature_verifies_with_the_official_library(secret: str) -> None:
    body = outgoing.encode(PAYLOAD)
    now = int(time.time())
    headers = sign(secret, MSG_ID, now, body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers) == PAYLOAD


def test_the_signature_covers_id_time_and_body() -> None:
    body = outgoing.encode(PAYLOAD)
    headers = sign(SECRET, MSG_ID, 1_700_000_000, body)
    # Computed here from the Standard Webhooks definition, independently of sign().
    expected = hmac.new(KEY, f"{MSG_ID}.1700000000.".encode() + body, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()
    assert sign(SECRET, "outcome_other", 1_700_000_000, body) != headers
    assert sign(SECRET, MSG_ID, 1_700_000_001, body) != headers


def test_our_signature_is_the_official_vector_and_the_official_librarys() -> None:
    # The official test vector (standard-webhooks, libraries/python/tests/test_webhooks.py, test_sign_function).
    secret, msg_id, timestamp = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    body = b'{"test": 2432232314}'
    ours = sign(secret, msg_id, timestamp, body)["webhook-signature"]
    assert ours == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    official = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode())
    assert ours == official


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not*base64", "whsec_===="])
def test_a_bad_secret_cannot_sign(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        sign(secret, MSG_ID, 1, b"{}")


# ---- delivering outcomes -----------------------------------------------------------------------


def test_three_500s_then_delivered(pool: Pool, receiver: FakeReceiver) -> None:
    receiver.script = [500, 500, 500, 200]
    kinds = [deliver(pool, receiver.url, SECRET, MSG_ID, PAYLOAD, timeout=3) for _ in range(4)]
    assert kinds[:3] == [PostResult("retry", 500, None, "HTTP 500")] * 3
    assert kinds[3] == PostResult("delivered", 200, None, "HTTP 200")
    assert [a.status for a in receiver.attempts] == [500, 500, 500, 200]
    assert all(a.verified for a in receiver.attempts)
    # The same webhook-id on every attempt: the receiver can dedupe.
    assert {a.headers["webhook-id"] for a in receiver.attempts} == {MSG_ID}
    (accepted,) = receiver.accepted()
    assert accepted.payload == {**PAYLOAD, "timestamp": accepted.payload["timestamp"]}
    assert accepted.headers["content-type"] == "application/json"


def test_the_body_says_when_the_event_happened(pool: Pool, receiver: FakeReceiver) -> None:
    """Standard Webhooks' payload: `type`, then `timestamp`, the event's time, the same on every attempt."""
    receiver.script = [500, 200]
    for _ in range(2):
        deliver(pool, receiver.url, SECRET, MSG_ID, PAYLOAD, occurred_at=1_764_590_400.7)
    bodies = [json.loads(a.body) for a in receiver.attempts]
    assert all(a.verified for a in receiver.attempts)  # the official library verified the stamped body
    assert [b["timestamp"] for b in bodies] == ["2025-12-01T12:00:00Z"] * 2
    assert list(bodies[0])[:2] == ["type", "timestamp"]
    assert {k: v for k, v in bodies[0].items() if k != "timestamp"} == PAYLOAD
    # Without the event's time, the attempt's own (stale here, so refused, but its body is what counts).
    deliver(pool, receiver.url, SECRET, MSG_ID, PAYLOAD, now=1_800_000_000.0)
    assert json.loads(receiver.attempts[-1].body)["timestamp"] == "2027-01-15T08:00:00Z"
    # A payload with its own timestamp keeps it.
    deliver(pool, receiver.url, SECRET, MSG_ID, {**PAYLOAD, "timestamp": "2020-01-01T00:00:00Z"})
    assert json.loads(receiver.attempts[-1].body)["timestamp"] == "2020-01-01T00:00:00Z"


def test_the_outcome_webhook_waits_15_seconds() -> None:
    """Standard Webhooks: "A recommended request timeout value for webhooks is somewhere between 15 and 30s"."""
    assert outgoing.TIMEOUT == 15.0
    assert inspect.signature(deliver).parameters["timeout"].default == outgoing.TIMEOUT


def test_410_is_final(pool: Pool, receiver: FakeReceiver) -> None:
    receiver.script = [410]
    result = deliver(pool, receiver.url, SECRET, MSG_ID, PAYLOAD, timeout=3)
    assert (result.kind, result.status) == ("final", 410)
    assert receiver.accepted() == []


@pytest.mark.parametrize(
    ("script", "kind", "wait"),
    [
        ([(429, {"Retry-After": "120"})], "retry", 120),
        ([429], "retry", None),
        ([408], "retry", None),
        ([(503, {"Retry-After": "7"})], "retry", 7),
        ([302], "retry", None),
        ([400], "final", None),
        ([404], "final", None),
        ([204], "delivered", None),
    ],
)
def test_status_decides(pool: Pool, receiver: FakeReceiver, script: list[Any], kind: str, wait: int | None) -> None:
    receiver.script = script
    result = deliver(pool, receiver.url, SECRET, MSG_ID, PAYLOAD, timeout=3)
    assert (result.kind, result.retry_after) == (kind, wait)


def test_retry_after_as_an_http_date() -> None:
    now = 1_800_000_000.0
    assert outgoing.retry_after(formatdate(now + 90, usegmt=True), now) == 90
    assert outgoing.retry_after(formatdate(now - 90, usegmt=True), now) == 0
    assert outgoing.retry_after("9" * 12, now) is None
    assert outgoing.retry_after("999999", now) == outgoing.MAX_RETRY_AFTER
    assert outgoing.retry_after("soon", now) is None
    assert outgoing.retry_after(None, now) is None


def test_a_wrong_secret_is_refused_by_the_receiver(pool: Pool, receiver: FakeReceiver) -> None:
    other = "whsec_" + base64.b64encode(b"another-key-another-key-another!").decode()
    result = deliver(pool, receiver.url, other, MSG_ID, PAYLOAD, timeout=3)
    assert (result.kind, result.status) == ("final", 401)
    assert not receiver.attempts[0].verified


def test_a_stale_timestamp_is_refused_by_the_receiver(pool: Pool, receiver: FakeReceiver) -> None:
    result = deliver(pool, receiver.url, SECRET, MSG_ID, PAYLOAD, timeout=3, now=time.time() - 600)
    assert result.status == 401


def test_no_receiver_is_retried(pool: Pool) -> None:
    result = deliver(pool, "http://127.0.0.1:9/outcomes", SECRET, MSG_ID, PAYLOAD, timeout=1)
    assert (result.kind, result.status) == ("retry", None)
    assert result.reason.startswith("no answer")


def test_a_secret_that_cannot_sign_is_retried_and_nothing_is_sent(pool: Pool, receiver: FakeReceiver) -> None:
    result = deliver(pool, receiver.url, "whsec_***", MSG_ID, PAYLOAD, timeout=3)
    assert result.kind == "retry"
    assert "outcome.secret" in result.reason
    assert "***" not in result.reason
    assert receiver.attempts == []


# ---- HubSpot: pure builders and parsers ----------------------------------------------------------


def test_request_builders() -> None:
    patch = hubspot.update_contact("101", "formcall_call_status", "Conectada")
    assert (patch.method, patch.path) == ("PATCH", "/crm/objects/2026-09/contacts/101")
    assert json.loads(patch.body or b"") == {"properties": {"formcall_call_status": "Conectada"}}
    by_email = hubspot.update_contact_by_email("ana+x@acme.cl", "formcall_call_status", "Conectada")
    assert (by_email.method, by_email.path) == (
        "PATCH",
        "/crm/objects/2026-09/contacts/ana%2Bx%40acme.cl?idProperty=email",
    )
    read = hubspot.read_contact_by_email("ana@acme.cl")
    assert (read.method, read.path, read.body) == (
        "GET",
        "/crm/objects/2026-09/contacts/ana%40acme.cl?idProperty=email&properties=phone,mobilephone",
        None,
    )
    note = hubspot.create_note("Llamada FormCall: <Conectada>\nlead_id: ld_1", 1_764_590_400_000)
    assert (note.method, note.path) == ("POST", "/crm/objects/2026-09/notes")
    assert json.loads(note.body or b"") == {
        "properties": {
            "hs_timestamp": "1764590400000",
            "hs_note_body": "<p>Llamada FormCall: &lt;Conectada&gt;<br>lead_id: ld_1</p>",
        }
    }
    link = hubspot.associate_note("9001", "101")
    assert (link.method, link.path) == ("PUT", "/crm/objects/2026-09/notes/9001/associations/contacts/101")
    assert json.loads(link.body or b"") == [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]
    assert hubspot.account_details().path == "/account-info/2026-09/details"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("101", "101"), (101, "101"), (" 42 ", "42"), ("", None), ("../x", None), (True, None), (-1, None), (None, None)],
)
def test_contact_ids(value: Any, expected: str | None) -> None:
    assert hubspot.contact_id_of(value) == expected


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"phone": "+56961234567"}, True),
        ({"phone": "+56 9 6123 4567"}, True),
        ({"phone": "9 6123 4567"}, True),  # national, read in the lead's country
        ({"phone": "56961234567"}, True),  # the country code without "+"
        ({"phone": "", "mobilephone": "(+56) 9-6123-4567"}, True),
        ({"phone": "+56 9 6123 4568"}, False),
        ({"phone": "+54 9 6123 4567"}, False),
        ({"phone": None, "mobilephone": None}, False),
        ({}, False),
        ({"phone": "x" * 500}, False),
        ({"email": "+56961234567"}, False),  # only phone and mobilephone count
    ],
)
def test_may_write(properties: dict[str, Any], expected: bool) -> None:
    assert hubspot.may_write(properties, "+56961234567") is expected


def test_may_write_needs_the_leads_number() -> None:
    assert hubspot.may_write({"phone": "+56961234567"}, None) is False
    assert hubspot.may_write({"phone": "+56961234567"}, "") is False


def test_next_day_is_midnight_in_the_accounts_zone() -> None:
    # 2026-12-06 10:00 UTC is 07:00 in Santiago (summer, -03:00): its next midnight is 03:00 UTC tomorrow.
    now = 1_796_551_200.0
    assert hubspot.next_day(now, "America/Santiago") == 1_796_612_400.0
    assert hubspot.next_day(now, "Asia/Tokyo") == 1_796_569_200.0  # 19:00 there; midnight at 15:00 UTC
    assert hubspot.next_day(now, "Not/AZone", -10_800_000) == 1_796_612_400.0  # the offset, when the name is unknown
    assert hubspot.next_day(now, None) == now + 86_400


def _answer(status: int, body: Any = None, **headers: str) -> Answer:
    return Answer(status, {k.replace("_", "-"): v for k, v in headers.items()}, json.dumps(body).encode())


def test_classify() -> None:
    now = 1_800_000_000.0
    assert hubspot.classify(_answer(200, {}), now) is None
    assert hubspot.classify(_answer(429, {"errorType": "RATE_LIMIT"}, retry_after="3"), now)[:2] == ("retry", 3)
    assert hubspot.classify(_answer(429, {}), now)[:2] == ("retry", 10)
    secondly = {"errorType": "RATE_LIMIT", "policyName": "SECONDLY"}
    assert hubspot.classify(_answer(429, secondly, retry_after="1"), now)[:2] == ("retry", 1)
    daily = {"message": "You have reached your daily limit.", "errorType": "RATE_LIMIT", "policyName": "DAILY"}
    assert hubspot.classify(_answer(429, daily, retry_after="1"), now)[:2] == ("hold", None)
    assert hubspot.classify(_answer(502, None), now)[:2] == ("retry", None)
    assert hubspot.classify(_answer(401, {"category": "INVALID_AUTHENTICATION"}), now)[0] == "final"
    assert hubspot.classify(_answer(403, {"category": "MISSING_SCOPES"}), now)[0] == "final"
    assert hubspot.classify(_answer(404, {"category": "OBJECT_NOT_FOUND"}), now)[0] == "not_found"
    kind, _, reason = hubspot.classify(_answer(400, {"category": "VALIDATION_ERROR", "message": "x\ny"}), now) or ("",)
    assert (kind, reason) == ("final", "HubSpot refused the request (HTTP 400 VALIDATION_ERROR: xy)")
    quiet = hubspot.classify(_answer(400, {"message": "ana@acme.cl is bad"}), now, echo_message=False)
    # Without echo_message, HubSpot's message (which may hold the lead's email) stays out of the reason.
    assert quiet == ("final", None, "HubSpot refused the request (HTTP 400)")


def test_parsers() -> None:
    assert hubspot.contact_of(_answer(200, {"id": "101", "properties": {"phone": "+1"}})) == ("101", {"phone": "+1"})
    assert hubspot.contact_of(Answer(200, {}, b"<html>")) == (None, {})
    assert hubspot.created_id(_answer(201, {"id": "9001"})) == "9001"
    assert hubspot.created_id(_answer(201, {"id": None})) is None
    details = {"timeZone": "America/Santiago", "utcOffsetMilliseconds": -10_800_000}
    assert hubspot.account_zone(_answer(200, details)) == ("America/Santiago", -10_800_000)
    assert hubspot.account_zone(_answer(429, details)) == (None, None)


# ---- HubSpot over loopback ---------------------------------------------------------------------

NUMBER = "+56961234567"


def client(crm: FakeHubSpot, pool: Pool, token: str = HUBSPOT_TOKEN) -> HubSpotClient:
    return HubSpotClient(pool, token, api_url=crm.url, timeout=2)


def write(c: HubSpotClient, **changes: Any) -> hubspot.HubSpotResult:
    args: dict[str, Any] = {
        "contact_id": None,
        "email": None,
        "property": "formcall_call_status",
        "value": "Conectada",
        "note": outcomes.note_text(LEAD),
        "timestamp_ms": 1_764_590_400_000,
        "phone": NUMBER,
        "trusted": True,
        **changes,
    }
    return c.write_outcome(**args)


def test_the_fake_refuses_the_retired_versions(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    auth = {"Authorization": f"Bearer {HUBSPOT_TOKEN}", "Content-Type": "application/json"}
    patch = json.dumps({"properties": {"formcall_call_status": "x"}}).encode()
    for method, path, body in [
        ("PATCH", f"/crm/v3/objects/contacts/{cid}", patch),
        ("POST", "/crm/v3/objects/contacts/search", b'{"filterGroups":[]}'),
        ("POST", "/crm/v3/objects/notes", b'{"properties":{"hs_timestamp":"1"}}'),
        ("PUT", f"/crm/v4/objects/notes/1/associations/contacts/{cid}", b"[]"),
    ]:
        assert send(pool, method, crm.url + path, headers=auth, body=body, timeout=2).status == 404
    assert crm.notes == {} and "formcall_call_status" not in crm.contacts[cid].properties
    assert (
        send(pool, "PATCH", f"{crm.url}/crm/objects/2026-09/contacts/{cid}", headers=auth, body=patch, timeout=2).status
        == 200
    )


def test_only_date_based_paths_are_used(crm: FakeHubSpot, pool: Pool) -> None:
    crm.add_contact("ana@acme.cl", phone=NUMBER)
    assert write(client(crm, pool), email="ana@acme.cl", trusted=False).kind == "delivered"
    assert write(client(crm, pool), email="ana@acme.cl").kind == "delivered"
    assert crm.calls and all(c.path.startswith("/crm/objects/2026-09/") for c in crm.calls)


def test_found_by_id_on_a_hubspot_route(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    result = write(client(crm, pool), contact_id=cid, email="ana@acme.cl")
    assert result.kind == "delivered"
    assert (result.contact_id, result.done) == (cid, frozenset({"contact", "property", "note", "association"}))
    assert crm.contacts[cid].properties["formcall_call_status"] == "Conectada"
    (note,) = crm.notes_of(cid)
    assert note["hs_timestamp"] == "1764590400000"
    assert "Llamada FormCall: Conectada" in note["hs_note_body"]
    assert result.note_id in crm.notes
    assert [(c.method, c.path) for c in crm.calls] == [
        ("PATCH", f"/crm/objects/2026-09/contacts/{cid}"),
        ("POST", "/crm/objects/2026-09/notes"),
        ("PUT", f"/crm/objects/2026-09/notes/{result.note_id}/associations/contacts/{cid}"),
    ]
    assert all(c.headers["authorization"] == f"Bearer {HUBSPOT_TOKEN}" for c in crm.calls)


def test_found_by_email_on_a_hubspot_route_with_one_patch(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    result = write(client(crm, pool), email=" Ana@Acme.CL ")
    assert (result.kind, result.contact_id) == ("delivered", cid)
    # No search API (its own, lower rate limit) and no read: the PATCH names the contact by email.
    assert (crm.calls[0].method, crm.calls[0].path) == (
        "PATCH",
        "/crm/objects/2026-09/contacts/ana%40acme.cl?idProperty=email",
    )
    assert len(crm.calls) == 3
    assert len(crm.notes_of(cid)) == 1


def test_elsewhere_the_contact_is_written_only_when_its_number_is_the_leads(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl", mobilephone="+56 9 6123 4567")
    result = write(client(crm, pool), email="ana@acme.cl", trusted=False)
    assert (result.kind, result.contact_id) == ("delivered", cid)
    assert [(c.method, c.path.split("?")[0]) for c in crm.calls[:2]] == [
        ("GET", "/crm/objects/2026-09/contacts/ana%40acme.cl"),
        ("PATCH", f"/crm/objects/2026-09/contacts/{cid}"),
    ]
    assert crm.calls[0].path.endswith("?idProperty=email&properties=phone,mobilephone")
    assert len(crm.notes_of(cid)) == 1


def test_a_strangers_email_does_not_write_on_the_contact(crm: FakeHubSpot, pool: Pool) -> None:
    """Issue 18.1: a stranger's form gave a real contact's email with the stranger's own number."""
    cid = crm.add_contact("ana@acme.cl", phone="+56 9 6123 4567")
    result = write(client(crm, pool), email="ana@acme.cl", phone="+56962000001", trusted=False)
    assert (result.kind, result.contact_id, result.done) == ("mismatch", None, frozenset())
    assert "formcall_call_status" not in crm.contacts[cid].properties
    assert crm.notes == {} and [c.method for c in crm.calls] == ["GET"]
    assert "ana@" not in result.reason


def test_elsewhere_a_submitted_id_is_ignored(crm: FakeHubSpot, pool: Pool) -> None:
    """Issue 18.1: posting "vid": "4242" on a public route set the property on contact 4242."""
    victim = crm.add_contact("victim@acme.cl", phone="+56 2 2123 4567")
    result = write(client(crm, pool), contact_id=victim, email=None, trusted=False)
    assert result.kind == "not_found"
    assert "formcall_call_status" not in crm.contacts[victim].properties
    assert crm.calls == [] and crm.notes == {}


def test_a_checked_contact_is_not_read_again(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl", phone=NUMBER)
    c = client(crm, pool)
    crm.fail_next(1, 500, path="/notes")
    first = write(c, email="ana@acme.cl", trusted=False)
    assert (first.kind, first.done) == ("retry", frozenset({"contact", "property"}))
    crm.calls.clear()
    second = write(c, email="ana@acme.cl", trusted=False, contact_id=first.contact_id, done=first.done)
    assert second.kind == "delivered"
    assert [x.method for x in crm.calls] == ["POST", "PUT"]
    assert len(crm.notes_of(cid)) == 1


def test_a_stale_id_falls_back_to_the_email(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    result = write(client(crm, pool), contact_id="999", email="ana@acme.cl")
    assert (result.kind, result.contact_id) == ("delivered", cid)
    assert [c.status for c in crm.calls[:2]] == [404, 200]


@pytest.mark.parametrize(
    ("contact_id", "email", "trusted"),
    [
        ("999", "nadie@acme.cl", True),
        (None, "nadie@acme.cl", True),
        ("999", None, True),
        (None, "nadie@acme.cl", False),
    ],
)
def test_contact_not_found(
    crm: FakeHubSpot, pool: Pool, contact_id: str | None, email: str | None, trusted: bool
) -> None:
    crm.add_contact("ana@acme.cl", phone=NUMBER)
    result = write(client(crm, pool), contact_id=contact_id, email=email, trusted=trusted)
    assert (result.kind, result.contact_id, result.done) == ("not_found", None, frozenset())
    assert "nadie" not in result.reason
    assert crm.notes == {}


def test_429_then_200(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    c = client(crm, pool)
    crm.fail_next(1, 429, {"Retry-After": "2"})
    first = write(c, contact_id=cid)
    assert (first.kind, first.retry_after, first.hold_until) == ("retry", 2, None)
    assert "rate limit" in first.reason
    second = write(c, contact_id=first.contact_id, done=first.done, note_id=first.note_id)
    assert second.kind == "delivered"
    assert len(crm.notes_of(cid)) == 1


def test_429_without_retry_after_waits_ten_seconds(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    crm.fail_next(1, 429)
    assert write(client(crm, pool), contact_id=cid).retry_after == 10


@pytest.mark.parametrize("zone", ["America/Santiago", "Asia/Kolkata"])
def test_a_daily_429_holds_until_the_accounts_midnight(crm: FakeHubSpot, pool: Pool, zone: str) -> None:
    cid = crm.add_contact("ana@acme.cl")
    crm.time_zone = zone
    crm.fail_next(1, 429, {"Retry-After": "1"}, policy="DAILY")
    now = 1_764_590_400.0  # the caller's clock, as the note's timestamp says it
    result = write(client(crm, pool), contact_id=cid, timestamp_ms=int(now * 1000))
    assert (result.kind, result.retry_after, result.done) == ("hold", None, frozenset({"contact"}))
    assert "daily limit" in result.reason
    assert result.hold_until == hubspot.next_day(now, zone)
    assert crm.calls[-1].path == "/account-info/2026-09/details"
    assert "formcall_call_status" not in crm.contacts[cid].properties


def test_a_daily_429_without_the_accounts_zone_holds_a_day(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    crm.fail_next(2, 429, policy="DAILY")  # the details are refused too
    now = 1_764_590_400.0
    result = write(client(crm, pool), contact_id=cid, timestamp_ms=int(now * 1000))
    assert result.kind == "hold" and result.hold_until == now + 86_400


def test_a_retry_resumes_where_it_stopped(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    c = client(crm, pool)
    crm.fail_next(1, 500, path="/associations/")
    first = write(c, contact_id=cid)
    assert (first.kind, first.done) == ("retry", frozenset({"contact", "property", "note"}))
    assert first.reason.startswith("association: HubSpot unavailable (HTTP 500")
    assert first.note_id in crm.notes
    crm.calls.clear()
    second = write(c, contact_id=first.contact_id, done=first.done, note_id=first.note_id)
    assert second.kind == "delivered"
    assert second.note_id == first.note_id
    # Only the step left is sent: no second PATCH, no second note.
    assert [(x.method, x.path) for x in crm.calls] == [
        ("PUT", f"/crm/objects/2026-09/notes/{first.note_id}/associations/contacts/{cid}")
    ]
    assert len(crm.notes) == 1
    assert len(crm.notes_of(cid)) == 1


def test_note_done_without_its_id_is_made_again(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    result = write(client(crm, pool), contact_id=cid, done={"contact", "property", "note"}, note_id=None)
    assert result.kind == "delivered"
    assert [x.method for x in crm.calls] == ["POST", "PUT"]
    assert len(crm.notes_of(cid)) == 1


def test_property_done_without_a_contact_id_is_written_again(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl", phone=NUMBER)
    result = write(client(crm, pool), email="ana@acme.cl", done={"property"}, trusted=False)
    assert (result.kind, result.contact_id) == ("delivered", cid)
    assert [x.method for x in crm.calls] == ["GET", "PATCH", "POST", "PUT"]


def test_a_lost_note_answer_never_shows_two_notes(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    c = client(crm, pool)
    # The create reaches HubSpot, which makes the note, but its answer is lost.
    crm.lose_next(1, path="/crm/objects/2026-09/notes")
    lost = write(c, contact_id=cid)
    assert (lost.kind, lost.note_id, lost.done) == ("retry", None, frozenset({"contact", "property"}))
    assert "unattached" in lost.reason
    assert len(crm.notes) == 1
    retried = write(c, contact_id=lost.contact_id, done=lost.done, note_id=lost.note_id)
    assert retried.kind == "delivered"
    assert len(crm.notes) == 2  # the lost one exists...
    assert len(crm.notes_of(cid)) == 1  # ...but only one is on the contact's timeline


def test_token_refused_is_final(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    result = write(client(crm, pool, token="pat-revoked"), contact_id=cid)
    assert (result.kind, result.retry_after) == ("final", None)
    assert "refused the token" in result.reason
    assert "pat-revoked" not in result.reason
    assert "formcall_call_status" not in crm.contacts[cid].properties


def test_token_without_write_scope_is_final(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl", phone=NUMBER)
    result = write(client(crm, pool, token="pat-readonly"), email="ana@acme.cl", trusted=False)
    assert result.kind == "final"
    assert result.contact_id == cid
    assert "crm.objects.contacts.write" in result.reason


def test_a_missing_property_is_final_and_says_so(crm: FakeHubSpot, pool: Pool) -> None:
    cid = crm.add_contact("ana@acme.cl")
    result = write(client(crm, pool), contact_id=cid, property="formcall_estado")
    assert result.kind == "final"
    assert 'Property \\"formcall_estado\\" does not exist' in result.reason
    assert crm.notes == {}


def test_hubspot_down_is_retried(pool: Pool) -> None:
    result = write(HubSpotClient(pool, HUBSPOT_TOKEN, api_url="http://127.0.0.1:9", timeout=1), contact_id="101")
    assert (result.kind, result.done) == ("retry", frozenset({"contact"}))
    assert result.reason.startswith("no answer from HubSpot")
