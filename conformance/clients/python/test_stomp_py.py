"""stomp.py (``Connection12``, STOMP 1.2 over TCP) against a running Herald broker.

The broker address comes from ``HERALD_TCP_HOST`` / ``HERALD_TCP_PORT`` (``scripts/client-tests.sh``
starts a broker and sets them). Every wait is bounded, so a broker that stays silent fails the
test instead of hanging the run: frames are pushed by a listener into ``queue.Queue`` objects and
taken with ``get(timeout=...)``; stomp.py calls that block without a bound of their own
(``connect(wait=True)``, ``disconnect(receipt=...)``) run in a helper thread that is joined with a
timeout.
"""

import os
import queue
import threading
import uuid

import pytest
import stomp

WAIT_S = 5.0


def broker_address():
    host = os.environ.get("HERALD_TCP_HOST")
    port = os.environ.get("HERALD_TCP_PORT")
    if not host or not port:
        pytest.fail(
            "HERALD_TCP_HOST/HERALD_TCP_PORT are not set; run scripts/client-tests.sh, or start "
            "herald and export them"
        )
    return host, int(port)


def unique_topic(name):
    """A destination prefix that no other test uses."""
    return f"/topic/py-{os.getpid()}-{uuid.uuid4().hex[:8]}/{name}"


def bounded(what, fn, timeout=WAIT_S):
    """Runs ``fn()`` in a daemon thread; fails the test if it has not returned in ``timeout``."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name=f"bounded: {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"timed out after {timeout} s waiting for {what}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class Recorder(stomp.ConnectionListener):
    """Pushes every frame stomp.py hands over into queues the test reads with a timeout."""

    def __init__(self, name):
        self.name = name
        self.connected = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()
        self.disconnected = threading.Event()
        self._messages = {}
        self._lock = threading.Lock()
        self._pending_receipts = {}

    def messages(self, subscription):
        with self._lock:
            return self._messages.setdefault(subscription, queue.Queue())

    def on_connected(self, frame):
        self.connected.put(frame)

    def on_message(self, frame):
        self.messages(frame.headers.get("subscription")).put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame)

    def on_error(self, frame):
        self.errors.put(frame)

    def on_disconnected(self):
        self.disconnected.set()

    def receipt(self, receipt_id, timeout=WAIT_S):
        """The RECEIPT frame for ``receipt_id``; others that arrive meanwhile are kept."""
        if receipt_id in self._pending_receipts:
            return self._pending_receipts.pop(receipt_id)
        while True:
            try:
                frame = self.receipts.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"{self.name}: no RECEIPT {receipt_id} within {timeout} s{self._errors()}")
            if frame.headers.get("receipt-id") == receipt_id:
                return frame
            self._pending_receipts[frame.headers.get("receipt-id")] = frame

    def message(self, subscription, timeout=WAIT_S):
        try:
            return self.messages(subscription).get(timeout=timeout)
        except queue.Empty:
            pytest.fail(
                f"{self.name}: no MESSAGE for subscription {subscription} within {timeout} s"
                f"{self._errors()}"
            )

    def pending(self, subscription):
        return self.messages(subscription).qsize()

    def error_frames(self):
        frames = []
        while not self.errors.empty():
            frames.append(self.errors.get_nowait())
        return frames

    def _errors(self):
        frames = list(self.errors.queue)
        if not frames:
            return ""
        return "; ERROR frames: " + ", ".join(
            f"{f.headers.get('message')!r} {f.body!r}" for f in frames
        )


class Peer:
    """A connected ``stomp.Connection12`` with its recorder and receipt-bearing helpers."""

    def __init__(self, name, **options):
        self.name = name
        self.recorder = Recorder(name)
        self.conn = stomp.Connection12([broker_address()], reconnect_attempts_max=1, **options)
        self.conn.set_listener("recorder", self.recorder)
        self._seq = 0

    def receipt_id(self, label):
        self._seq += 1
        return f"{self.name}-{label}-{self._seq}"

    def connect(self, **kwargs):
        bounded(f"CONNECTED on {self.name}", lambda: self.conn.connect(wait=True, **kwargs))
        try:
            return self.recorder.connected.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail(f"{self.name}: connected, but on_connected saw no frame")

    def subscribe(self, destination, sub_id=None, **headers):
        sub_id = sub_id or self.receipt_id("sub")
        rid = self.receipt_id("subscribe")
        self.conn.subscribe(destination, id=sub_id, headers={**headers, "receipt": rid})
        self.recorder.receipt(rid)
        return sub_id

    def send(self, destination, body, content_type=None, **headers):
        rid = self.receipt_id("send")
        self.conn.send(destination, body, content_type=content_type, headers={**headers, "receipt": rid})
        return self.recorder.receipt(rid)

    def unsubscribe(self, sub_id):
        rid = self.receipt_id("unsubscribe")
        self.conn.unsubscribe(sub_id, headers={"receipt": rid})
        return self.recorder.receipt(rid)

    def disconnect(self, receipt=None):
        receipt = receipt or self.receipt_id("disconnect")
        bounded(f"DISCONNECT receipt on {self.name}", lambda: self.conn.disconnect(receipt=receipt))
        return receipt

    def close_quietly(self):
        if self.conn.is_connected():
            try:
                self.disconnect()
            except BaseException:
                pass


@pytest.fixture
def peers():
    """Makes connected peers on demand; closes them and checks for ERROR frames afterwards."""
    made = []

    def make(name, **options):
        peer = Peer(name, **options)
        made.append(peer)
        peer.connect()
        return peer

    yield make
    errors = []
    for peer in made:
        errors += [(peer.name, f.headers.get("message"), f.body) for f in peer.recorder.error_frames()]
        peer.close_quietly()
    assert errors == [], "broker sent ERROR frames"


def test_connect_negotiates_stomp_1_2():
    peer = Peer("connect")
    try:
        connected = peer.connect()
        assert connected.cmd == "CONNECTED"
        assert connected.headers["version"] == "1.2"
        assert connected.headers.get("server", "").startswith("herald/"), connected.headers
        assert peer.conn.is_connected()
    finally:
        peer.close_quietly()


def test_connect_command_also_works():
    # stomp.py sends STOMP by default; CONNECT is what most other clients send.
    peer = Peer("connect-cmd")
    try:
        connected = peer.connect(with_connect_command=True)
        assert connected.headers["version"] == "1.2"
    finally:
        peer.close_quietly()


def test_pattern_subscription_text_body_and_custom_headers(peers):
    base = unique_topic("prices")
    sub = peers("sub")
    pub = peers("pub")
    sub_id = sub.subscribe(f"{base}/*")

    body = "IBM 142.50 — Grüße ✓"
    custom = {
        "x-colons": "a:b:c",
        "x-spaces": "two  spaces and more",
        "x-url": "http://example.test:8080/path?q=1&r=two words",
        "x-escapes": "line one\nline two\\with backslash\r\nand CR LF",
        # STOMP 1.2 header values are not trimmed (stompjs trims on receipt; stomp.py doesn't).
        "x-padded": "  leading and trailing  ",
    }
    receipt = pub.send(f"{base}/IBM", body, content_type="text/plain;charset=utf-8", **custom)
    assert receipt.cmd == "RECEIPT"

    message = sub.recorder.message(sub_id)
    assert message.cmd == "MESSAGE"
    assert message.body == body
    assert message.headers["destination"] == f"{base}/IBM"
    assert message.headers["subscription"] == sub_id
    assert message.headers.get("message-id")
    assert message.headers["content-type"] == "text/plain;charset=utf-8"
    assert message.headers["content-length"] == str(len(body.encode("utf-8")))
    for name, value in custom.items():
        assert message.headers.get(name) == value, name


def test_binary_body_with_nul_bytes(peers):
    base = unique_topic("blobs")
    # auto_decode off: the body is handed over as the exact bytes received.
    sub = peers("sub", auto_decode=False)
    pub = peers("pub")
    sub_id = sub.subscribe(f"{base}/**")

    payload = bytes([0, 1, 2, 0, 0, 255, 10, 13, 0, 92, 58, 0]) + os.urandom(4096) + b"\x00"
    pub.send(f"{base}/one/two", payload, content_type="application/octet-stream")

    message = sub.recorder.message(sub_id)
    assert message.body == payload
    assert message.headers["content-length"] == str(len(payload))
    assert message.headers["content-type"] == "application/octet-stream"


def test_single_and_multi_segment_wildcards(peers):
    base = unique_topic("wild")
    sub = peers("sub")
    pub = peers("pub")
    single = sub.subscribe(f"{base}/prices/*")
    deep = sub.subscribe(f"{base}/feeds/**")

    pub.send(f"{base}/prices/IBM/bid", "too deep for *")
    pub.send(f"{base}/feeds/a/b/c", "deep")
    pub.send(f"{base}/feeds/x", "one level")
    pub.send(f"{base}/prices/MSFT", "MSFT")

    first = sub.recorder.message(single)
    assert first.headers["destination"] == f"{base}/prices/MSFT"
    assert sub.recorder.pending(single) == 0
    assert [sub.recorder.message(deep).body for _ in range(2)] == ["deep", "one level"]
    assert sub.recorder.pending(deep) == 0


def test_every_matching_subscription_gets_a_copy(peers):
    base = unique_topic("fanout")
    a = peers("a")
    b = peers("b")
    pub = peers("pub")
    exact = a.subscribe(f"{base}/news/sport")
    pattern = a.subscribe(f"{base}/news/*")
    other = b.subscribe(f"{base}/**")

    pub.send(f"{base}/news/sport", "goal")

    for peer, sub_id in [(a, exact), (a, pattern), (b, other)]:
        message = peer.recorder.message(sub_id)
        assert message.body == "goal"
        assert message.headers["subscription"] == sub_id


def test_messages_arrive_in_publish_order(peers):
    base = unique_topic("order")
    sub = peers("sub")
    pub = peers("pub")
    sub_id = sub.subscribe(f"{base}/seq")
    count = 200
    for i in range(count - 1):
        pub.conn.send(f"{base}/seq", str(i))
    pub.send(f"{base}/seq", str(count - 1))
    received = [int(sub.recorder.message(sub_id).body) for _ in range(count)]
    assert received == list(range(count))


def test_unsubscribe_stops_delivery(peers):
    base = unique_topic("unsub")
    sub = peers("sub")
    pub = peers("pub")
    gone = sub.subscribe(f"{base}/gone/*")
    kept = sub.subscribe(f"{base}/kept/*")

    pub.send(f"{base}/gone/1", "before")
    assert sub.recorder.message(gone).body == "before"

    receipt = sub.unsubscribe(gone)
    assert receipt.cmd == "RECEIPT"

    # Barrier: the second SEND is routed after the first; once it arrived, the first would have.
    pub.send(f"{base}/gone/2", "after")
    pub.send(f"{base}/kept/1", "barrier")
    assert sub.recorder.message(kept).body == "barrier"
    assert sub.recorder.pending(gone) == 0, "a MESSAGE arrived after UNSUBSCRIBE"


def test_disconnect_with_receipt():
    peer = Peer("bye")
    peer.connect()
    receipt_id = peer.disconnect(receipt="bye-receipt-1")
    frame = peer.recorder.receipt(receipt_id)
    assert frame.headers["receipt-id"] == "bye-receipt-1"
    assert peer.recorder.disconnected.wait(WAIT_S), "connection not closed after DISCONNECT receipt"
    assert not peer.conn.is_connected()
    assert peer.recorder.error_frames() == []
