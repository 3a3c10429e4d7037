"""The low-latency association socket (pydicom/pynetdicom#917 fix) on a real socket pair."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from pynetdicom import AE
from pynetdicom.association import Association

from integrations.dicom.transport import LowLatencySocket


@pytest.fixture
def pair() -> Iterator[tuple[LowLatencySocket, socket.socket]]:
    """Our socket on one end of a TCP connection over loopback, a plain socket on the other."""
    server = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    server.close()
    ours = LowLatencySocket(Association(AE(), "acceptor"), client_socket=accepted)
    yield ours, peer
    peer.close()
    ours.close()


def test_recv_returns_exactly_what_was_asked_across_writes(pair: tuple[LowLatencySocket, socket.socket]) -> None:
    ours, peer = pair
    payload = bytes(range(256)) * 5000  # 1.28 MB: more than one read chunk

    def send_in_pieces() -> None:
        for start in range(0, len(payload), 70_001):
            peer.sendall(payload[start : start + 70_001])

    sender = threading.Thread(target=send_in_pieces)
    sender.start()
    header = ours.recv(6)
    rest = ours.recv(len(payload) - 6)
    sender.join()
    assert bytes(header + rest) == payload


def test_recv_returns_what_arrived_when_the_peer_closes(pair: tuple[LowLatencySocket, socket.socket]) -> None:
    ours, peer = pair
    peer.sendall(b"partial")
    peer.close()
    assert bytes(ours.recv(100)) == b"partial"


def test_ready_waits_for_data(pair: tuple[LowLatencySocket, socket.socket]) -> None:
    ours, peer = pair
    assert ours.ready is False
    peer.sendall(b"\x04")
    assert ours.ready is True
    assert bytes(ours.recv(1)) == b"\x04"


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux-only")
def test_quick_ack_is_armed_before_reading(pair: tuple[LowLatencySocket, socket.socket]) -> None:
    ours, peer = pair
    assert ours.socket is not None
    ours.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
    peer.sendall(b"x")
    ours.recv(1)
    assert ours.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1


def test_a_queued_primitive_wakes_the_reactor(pair: tuple[LowLatencySocket, socket.socket],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The reactor waits in select() for data *or* for something to send, never on a timer."""
    ours, _ = pair
    dul = ours.assoc.dul
    ours._wake_on_work(dul)
    monkeypatch.setattr("integrations.dicom.transport.IDLE_WAIT_S", 3600.0)  # would hang without the wake-up
    waiter = threading.Thread(target=lambda: results.append(ours.ready))
    results: list[bool] = []
    waiter.start()
    dul.to_provider_queue.put("a primitive")
    waiter.join(timeout=60)
    assert not waiter.is_alive() and results == [False]  # woken, and no data to read
    assert dul.to_provider_queue.get_nowait() == "a primitive"


def test_echoes_are_answered_with_a_long_idle_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every C-ECHO-RSP is sent because queuing it wakes the reactor (an hour-long idle wait would
    otherwise hold each response back past the client's 10 s timeout)."""
    from pynetdicom.sop_class import Verification

    from integrations.dicom import DicomListener, DicomListenerConfig, StoreOutcome

    monkeypatch.setattr("integrations.dicom.transport.IDLE_WAIT_S", 3600.0)
    listener = DicomListener(DicomListenerConfig(ae_title="DACS", host="127.0.0.1", port=0),
                             lambda obj: StoreOutcome.success(), None)
    port = listener.start()
    try:
        ae = AE()
        ae.add_requested_context(Verification)
        ae.dimse_timeout = ae.acse_timeout = ae.network_timeout = 10
        assoc = ae.associate("127.0.0.1", port, ae_title="DACS")
        assert assoc.is_established
        statuses = [assoc.send_c_echo().Status for _ in range(20)]
        assoc.release()
        assert statuses == [0x0000] * 20
    finally:
        listener.stop()
