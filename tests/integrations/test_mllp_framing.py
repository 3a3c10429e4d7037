"""The MLLP byte-stream decoder, fed exactly as a socket might deliver (any split, any garbage)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.mllp import Frame, FramingError, MllpDecoder, frame

MSG = b"MSH|^~\\&|RIS|H|DACS|H|||ADT^A08|1|P|2.5\rPID|||1^^^H\r"


def feed_all(decoder: MllpDecoder, chunks: list[bytes]) -> list[Frame | FramingError]:
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_one_frame() -> None:
    assert MllpDecoder(1024).feed(frame(MSG)) == [Frame(MSG)]


def test_byte_by_byte() -> None:
    decoder = MllpDecoder(1024)
    data = frame(MSG)
    events = feed_all(decoder, [data[i : i + 1] for i in range(len(data))])
    assert events == [Frame(MSG)] and not decoder.in_message


def test_many_frames_in_one_read_and_blank_lines_between() -> None:
    data = frame(MSG) + b"\r\n" + frame(MSG + b"X") + frame(MSG + b"Y")
    assert MllpDecoder(1024).feed(data) == [Frame(MSG), Frame(MSG + b"X"), Frame(MSG + b"Y")]


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=1, max_value=len(MSG) * 3), max_size=40))
def test_any_split_gives_the_same_frames(cuts: list[int]) -> None:
    data = frame(MSG) + frame(MSG[::-1]) + frame(MSG)
    points = sorted({c % len(data) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert feed_all(MllpDecoder(1024), chunks) == [Frame(MSG), Frame(MSG[::-1]), Frame(MSG)]


def test_end_block_waits_for_its_cr() -> None:
    decoder = MllpDecoder(1024)
    assert decoder.feed(b"\x0b" + MSG + b"\x1c") == []
    assert decoder.feed(b"\r") == [Frame(MSG)]


def test_end_block_without_cr_is_an_error_and_stream_resumes() -> None:
    events = MllpDecoder(1024).feed(b"\x0b" + MSG + b"\x1cX" + frame(MSG))
    assert isinstance(events[0], FramingError) and events[0].data == MSG and "CR" in events[0].reason
    assert events[1:] == [FramingError(b"X", "data outside MLLP framing (no start block)"), Frame(MSG)]


def test_unframed_message_then_end_block() -> None:
    events = MllpDecoder(1024).feed(MSG + b"\x1c\r" + frame(MSG))
    assert events == [FramingError(MSG, "end block without start block"), Frame(MSG)]


def test_start_block_inside_a_message() -> None:
    events = MllpDecoder(1024).feed(b"\x0bMSH|^~\\&|half" + frame(MSG))
    assert isinstance(events[0], FramingError) and events[0].data == b"MSH|^~\\&|half"
    assert events[1] == Frame(MSG)


def test_oversize_is_discarded_to_its_end_and_reported_with_its_head() -> None:
    decoder = MllpDecoder(100)
    big = MSG + b"X" * 500
    events = feed_all(decoder, [frame(big)[i : i + 37] for i in range(0, len(big) + 3, 37)] + [frame(MSG)])
    assert isinstance(events[0], FramingError) and "over 100 bytes" in events[0].reason
    assert events[0].data.startswith(MSG) and not events[0].fatal
    assert events[1] == Frame(MSG)
    assert decoder.buffered == 0


def test_exactly_max_size_is_accepted() -> None:
    payload = MSG + b"Z" * (200 - len(MSG))
    assert MllpDecoder(200).feed(frame(payload)) == [Frame(payload)]
    assert isinstance(MllpDecoder(199).feed(frame(payload))[0], FramingError)


def test_unframed_garbage_over_the_limit_is_fatal() -> None:
    [event] = MllpDecoder(64).feed(b"G" * 100)
    assert isinstance(event, FramingError) and event.fatal


def test_finish_reports_unfinished_input() -> None:
    decoder = MllpDecoder(1024)
    decoder.feed(b"\x0b" + MSG[:20])
    [event] = decoder.finish("idle timeout")
    assert event.data == MSG[:20] and "idle timeout" in event.reason
    assert decoder.finish("end") == [] and not decoder.in_message
    decoder.feed(b"junk")
    assert decoder.finish("end of connection")[0].data == b"junk"


@settings(max_examples=300)
@given(st.lists(st.one_of(st.binary(max_size=50), st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\x1c\r"])),
                max_size=30))
def test_arbitrary_bytes_never_crash_and_a_good_frame_after_them_survives(chunks: list[bytes]) -> None:
    decoder = MllpDecoder(256)
    events = feed_all(decoder, chunks)
    assert all(isinstance(e, Frame | FramingError) for e in events)
    assert all(len(e.payload) <= 256 for e in events if isinstance(e, Frame))
    # After anything, a start block resynchronises the stream.
    assert decoder.feed(b"\x1c\r" + frame(MSG))[-1] == Frame(MSG)
