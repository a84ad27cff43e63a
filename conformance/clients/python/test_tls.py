"""stomp.py over TLS (issue 12, item 8) against the broker scripts/client-tests.sh starts with
TLS on its TCP listener: ``HERALD_TLS_HOST`` / ``HERALD_TLS_PORT``, its certificate signed by the
test CA in ``HERALD_TLS_CA`` (broker/tests/fixtures/tls/ca.pem)."""

import os

import pytest
import stomp

from test_stomp_py import Recorder, bounded, unique_topic


def tls_broker():
    host = os.environ.get("HERALD_TLS_HOST")
    port = os.environ.get("HERALD_TLS_PORT")
    ca = os.environ.get("HERALD_TLS_CA")
    if not host or not port or not ca:
        pytest.fail(
            "HERALD_TLS_HOST/HERALD_TLS_PORT/HERALD_TLS_CA are not set; run "
            "scripts/client-tests.sh, or start a herald with [tcp.tls] and export them"
        )
    return (host, int(port)), ca


def tls_connection(address, ca):
    conn = stomp.Connection12([address], reconnect_attempts_max=1)
    # stomp.py checks the broker's certificate (and its name) only when given CA certificates.
    conn.set_ssl(for_hosts=[address], ca_certs=ca)
    return conn


def test_stomp_py_publishes_and_receives_over_tls():
    address, ca = tls_broker()
    conn = tls_connection(address, ca)
    recorder = Recorder("tls")
    conn.set_listener("recorder", recorder)
    bounded("CONNECTED over TLS", lambda: conn.connect(wait=True))
    try:
        topic = unique_topic("tls")
        conn.subscribe(topic, id="s", headers={"receipt": "sub"})
        recorder.receipt("sub")
        conn.send(topic, "over TLS", headers={"receipt": "send"})
        recorder.receipt("send")
        assert recorder.message("s").body == "over TLS"
        assert recorder.error_frames() == []
    finally:
        bounded("DISCONNECT", lambda: conn.disconnect(receipt="bye"))


def test_stomp_py_refuses_a_broker_it_cannot_verify():
    address, ca = tls_broker()
    # Trusting another certificate than the CA that signed the broker's: verification fails.
    other = os.path.join(os.path.dirname(ca), "server2.pem")
    conn = tls_connection(address, other)
    with pytest.raises(stomp.exception.ConnectFailedException):
        bounded("the refused connect", lambda: conn.connect(wait=True))
