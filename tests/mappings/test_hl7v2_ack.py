"""ACK building: original and enhanced modes, ERR by version, echo rules, duplicate key, batch ACKs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mappings.hl7v2 import (
    AckOutcome,
    ApplicationInternalError,
    build_ack,
    build_batch_ack,
    build_reject,
    duplicate_key,
    parse_message,
    process_message,
    split_messages,
)
from mappings.hl7v2.errors import RequiredFieldMissing, UnsupportedMessageType

NOW = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def sample(samples_dir: Path, prefix: str) -> bytes:
    return next((samples_dir / "hl7").glob(f"{prefix}_*.hl7")).read_bytes()


def segments(ack: bytes, codec: str = "ascii") -> dict[str, list[str]]:
    text = ack.decode(codec)
    assert text.endswith("\r")
    return {line[:3]: line.split("|") for line in text.split("\r") if line}


def test_original_mode_aa_echoes_and_swaps(samples_dir: Path) -> None:
    header = parse_message(sample(samples_dir, "02")).header
    ack = build_ack(header, AckOutcome.ACCEPT, control_id="ACK1", now=NOW)
    assert ack is not None
    seg = segments(ack)
    assert seg["MSH"][2:12] == ["MESA_IM", "XYZ_IMAGE_MANAGER", "MESA_OF", "XYZ_RADIOLOGY",
                                "20240506070809+0000", "", "ACK^O23^ACK", "ACK1", "P", "2.5.1"]
    assert seg["MSA"] == ["MSA", "AA", "100112"]
    assert "ERR" not in seg
    assert parse_message(ack).header.message_code == "ACK"  # our own parser reads it back


def test_fresh_control_id_each_time(samples_dir: Path) -> None:
    header = parse_message(sample(samples_dir, "01")).header
    ids = {segments(build_ack(header, AckOutcome.ACCEPT) or b"")["MSH"][9] for _ in range(5)}
    assert len(ids) == 5 and all(0 < len(i) <= 20 for i in ids)


def test_v25_reject_has_err_with_location_code_and_text(samples_dir: Path) -> None:
    raw = sample(samples_dir, "09")
    with pytest.raises(UnsupportedMessageType) as caught:
        process_message(raw)
    header = parse_message(raw).header
    ack = build_ack(header, caught.value.outcome, caught.value, now=NOW)
    assert ack is not None
    seg = segments(ack)
    assert seg["MSA"] == ["MSA", "AR", "1001129"]
    err = seg["ERR"]
    assert err[2] == "MSH^1^9^1^1" and err[3] == "200^Unsupported message type^HL70357" and err[4] == "E"
    assert "ORU" in err[8]
    assert seg["MSH"][17] == "8859/1"  # charset echoed (MSH-18)


def test_v24_error_uses_err1_and_msa3(samples_dir: Path) -> None:
    header = parse_message(sample(samples_dir, "12")).header
    error = RequiredFieldMissing("PID-3 (patient identifier list) is empty")
    ack = build_ack(header, AckOutcome.ERROR, error, now=NOW)
    assert ack is not None
    seg = segments(ack)
    assert seg["MSA"][:3] == ["MSA", "AE", "CNTRL-3456"] and "PID-3" in seg["MSA"][3]
    assert seg["ERR"] == ["ERR", "^^^101&Required field missing&HL70357"]


def test_v23_message_type_has_no_structure(samples_dir: Path) -> None:
    header = parse_message(sample(samples_dir, "11")).header
    seg = segments(build_ack(header, AckOutcome.ACCEPT) or b"")
    assert seg["MSH"][8] == "ACK^A01" and seg["MSH"][11] == "2.3"
    assert seg["MSH"][2] == "AIG" and seg["MSH"][3] == ""  # MSH-6 was empty: echoed empty


def test_v27_keeps_truncation_character(samples_dir: Path) -> None:
    header = parse_message(sample(samples_dir, "14")).header
    ack = build_ack(header, AckOutcome.REJECT, UnsupportedMessageType("RSP not supported"))
    assert ack is not None and ack.startswith(b"MSH|^~\\&#|REC APP|REC FAC|SEND APP|SEND FAC|")
    assert segments(ack)["MSH"][10] == "D"  # processing id echoed


def test_enhanced_mode_commit_acks(samples_dir: Path) -> None:
    header = parse_message(sample(samples_dir, "15")).header  # MSH-15 AL, MSH-16 NE
    assert header.enhanced_mode
    ack = build_ack(header, AckOutcome.ACCEPT)
    assert ack is not None
    seg = segments(ack, "latin-1")
    assert seg["MSA"] == ["MSA", "CA", "CTRL-ESC-0001"]
    assert seg["MSH"][14:16] == ["NE", "NE"] and seg["MSH"][17] == "8859/1"
    error = ApplicationInternalError("store down", retryable=True)
    assert segments(build_ack(header, error.outcome, error) or b"", "latin-1")["MSA"][1] == "CR"
    error = RequiredFieldMissing("missing")
    assert segments(build_ack(header, error.outcome, error) or b"", "latin-1")["MSA"][1] == "CE"


def _header(msh15: str, msh16: str = ""):
    return parse_message(f"MSH|^~\\&|A|B|C|D|||ADT^A08|1|P|2.5|||{msh15}|{msh16}\r".encode()).header


@pytest.mark.parametrize(
    ("msh15", "msh16", "outcome", "expected"),
    [
        ("", "", AckOutcome.ACCEPT, "AA"),
        ("", "", AckOutcome.ERROR, "AE"),
        ("", "", AckOutcome.REJECT, "AR"),
        ("AL", "", AckOutcome.ACCEPT, "CA"),
        ("NE", "AL", AckOutcome.ACCEPT, None),
        ("NE", "NE", AckOutcome.REJECT, None),
        ("ER", "", AckOutcome.ACCEPT, None),
        ("ER", "", AckOutcome.ERROR, "CE"),
        ("SU", "", AckOutcome.ACCEPT, "CA"),
        ("SU", "", AckOutcome.REJECT, None),
        ("", "AL", AckOutcome.ACCEPT, "CA"),  # enhanced by MSH-16 alone: empty MSH-15 counts as AL
    ],
)
def test_ack_conditions_table_0155(msh15: str, msh16: str, outcome: AckOutcome, expected: str | None) -> None:
    ack = build_ack(_header(msh15, msh16), outcome, ApplicationInternalError("x"))
    if expected is None:
        assert ack is None
    else:
        assert ack is not None and segments(ack)["MSA"][1] == expected


def test_ack_text_is_escaped() -> None:
    header = _header("")
    ack = build_ack(header, AckOutcome.ERROR, RequiredFieldMissing("bad | field ^ with & and ~ and \\"))
    assert ack is not None
    err = parse_message(ack).segment("ERR")
    assert err is not None and err.get(8) == "bad | field ^ with & and ~ and \\"


def test_duplicate_key_is_msh3_msh4_msh10(samples_dir: Path) -> None:
    a = parse_message(sample(samples_dir, "07")).header
    b = parse_message(sample(samples_dir, "06")).header  # same MSH-3/4/10 (100212), other content
    c = parse_message(sample(samples_dir, "08")).header
    assert duplicate_key(a) == duplicate_key(b) == "MESA_OF|XYZ_RADIOLOGY|100212"
    assert duplicate_key(c) != duplicate_key(a)
    assert duplicate_key(_header("")) == "A|B|1"


def test_duplicate_key_with_ack_store_dict(samples_dir: Path) -> None:
    """The pipeline's contract: a repeat of the key gets the stored ACK, no reprocessing."""
    store: dict[str, bytes] = {}
    processed = []

    def receive(raw: bytes) -> bytes:
        header = parse_message(raw).header
        key = duplicate_key(header)
        if key in store:
            return store[key]
        processed.append(process_message(raw).control_id)
        ack = build_ack(header, AckOutcome.ACCEPT) or b""
        store[key] = ack
        return ack

    raw = sample(samples_dir, "01")
    first, second = receive(raw), receive(raw)
    assert first == second and processed == ["103106"]


def test_reject_for_unparseable_bytes() -> None:
    error = ApplicationInternalError("framing", retryable=True)
    ack = build_reject(b"\x00junk\rMSH|^~\\&|RIS|H|DACS|H|||ORM^O01|42|P|2.3.1\rPID|", error)
    assert ack is not None and segments(ack)["MSA"] == ["MSA", "AR", "42", "framing"]
    assert build_reject(b"no msh at all", error) is None


def test_batch_ack_envelope(samples_dir: Path) -> None:
    batch = split_messages(sample(samples_dir, "13"))
    header = parse_message(batch.messages[0]).header
    assert build_ack(header, AckOutcome.ACCEPT) is None  # MSH-15 NE: this message gets no ACK
    result = build_batch_ack(batch.batch_header, [b"MSH|^~\\&|X\rMSA|AE|1\r"], now=NOW)
    lines = result.decode().split("\r")
    assert lines[0].split("|")[2:7] == ["DACS", "AUSDHSV", "", "ABCHS", "20240506070809+0000"]
    assert lines[0].split("|")[11] == "abchs20070101123401-1"  # BHS-12 echoes BHS-11
    assert lines[-2] == "BTS|1"
