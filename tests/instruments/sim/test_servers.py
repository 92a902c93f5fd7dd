"""Loopback servers: framing of the byte stream, loopback-only binds, injected faults."""

import socket
from dataclasses import dataclass

import pytest

from instruments.sim.servers import LoopbackServer, is_loopback


@dataclass
class Faults:
    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    reply_delay: float = 0.0
    missing_reply_rate: float = 0.0
    disconnect_after: int = 0


def upper(message: bytes) -> bytes | None:
    return None if message.startswith(b"quiet") else message.upper()


def talk(server: LoopbackServer, payload: bytes, expect: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        while data.count(server.delimiter) < expect:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_messages_split_on_the_delimiter_and_replies_come_back_in_order():
    with LoopbackServer(upper, delimiter=b"\n") as srv:
        assert talk(srv, b"a\nquiet\nbc\n", expect=2) == b"A\nBC\n"
        assert srv.messages == 3
        assert srv.resource == f"TCPIP0::127.0.0.1::{srv.port}::SOCKET"
        assert srv.url == f"socket://127.0.0.1:{srv.port}"


def test_a_message_split_across_packets_is_reassembled():
    with LoopbackServer(upper, delimiter=b"\x00") as srv, socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"ab")
        s.sendall(b"c\x00")
        assert s.recv(100) == b"ABC\x00"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.invalid"])
def test_non_loopback_bind_is_refused_without_allow_remote(host):
    with pytest.raises(ValueError, match="allow_remote"):
        LoopbackServer(upper, host=host)


def test_loopback_names_are_accepted():
    assert is_loopback("127.0.0.1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")


def test_the_listening_socket_is_on_loopback_only():
    with LoopbackServer(upper) as srv:
        assert srv._listener.getsockname()[0] == "127.0.0.1"


def test_injected_disconnect_closes_the_link_after_n_messages():
    faults = Faults(disconnect_after=2)
    with LoopbackServer(upper, faults=faults) as srv:
        data = talk(srv, b"a\nb\nc\nd\n", expect=4)
        assert data == b"A\nB\n"


def test_injected_missing_replies_are_not_sent():
    faults = Faults(missing_reply_rate=1.0)
    with LoopbackServer(upper, faults=faults) as srv, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=0.3) as s:
        s.sendall(b"a\n")
        with pytest.raises(TimeoutError):
            s.recv(10)
        assert srv.messages == 1


def test_corruption_flips_bits_at_the_configured_rate():
    faults = Faults(corrupt_rate=0.05)
    payload = bytes(range(1, 200)) * 20  # no newline inside
    payload = payload.replace(b"\n", b"x")
    with LoopbackServer(lambda m: m, faults=faults, seed=3) as srv:
        # Requests and replies are both garbled, so count differences on the echo.
        faults.corrupt_rate = 0.0
        clean = talk(srv, payload + b"\n", expect=1)
        faults.corrupt_rate = 0.01
        dirty = talk(srv, payload + b"\n", expect=1)
    assert clean == payload + b"\n"
    n = min(len(dirty), len(payload))
    flipped = sum(a != b for a, b in zip(dirty[:n], payload[:n], strict=True))
    assert 0.005 * n < flipped < 0.05 * n


def test_an_emulator_exception_does_not_take_the_server_down():
    def broken(message: bytes) -> bytes:
        if message == b"boom":
            raise RuntimeError("emulator bug")
        return b"ok"

    with LoopbackServer(broken) as srv:
        assert talk(srv, b"boom\nfine\n", expect=1) == b"ok\n"


def test_stop_closes_connections_and_frees_the_port():
    srv = LoopbackServer(upper).start()
    port = srv.port
    conn = socket.create_connection(("127.0.0.1", port))
    srv.stop()
    conn.settimeout(2)
    try:
        assert conn.recv(10) == b""  # orderly close ...
    except ConnectionResetError:
        pass  # ... or a reset: both mean the link is down
    conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5)
