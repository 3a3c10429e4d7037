"""HL7 v2 acknowledgements (ACK) and the duplicate-detection key, built without I/O.

Modes (HL7 v2.5 §2.9.2–2.9.3):

* **Original mode** (MSH-15 and MSH-16 empty; what IHE RAD requires): one ACK with MSA-1 AA, AE or AR.
* **Enhanced mode** (MSH-15 or MSH-16 valued): the answer on the connection is the *accept*
  acknowledgement, MSA-1 CA, CE or CR, sent or not according to MSH-15 (table 0155: AL always,
  NE never, ER only on error/reject, SU only on success; empty counts as AL). DACS commits the message
  before answering, so CA means "committed". Application acknowledgements (MSH-16) would be new
  messages sent back to the sender's own listener; DACS does not send them.

The ACK echoes MSH-10 in MSA-2, swaps sending and receiving application/facility, uses the incoming
delimiters, version (MSH-12), processing id (MSH-11) and charset (MSH-18), and has a fresh MSH-10.
AE/AR carry an ERR segment with the table 0357 code: for v2.5 and later ERR-2 location, ERR-3 code,
ERR-4 severity, ERR-8 text; before v2.5 the single ERR-1 (ELD: segment^sequence^field^code) and the text
in MSA-3.
"""

from __future__ import annotations

import datetime as dt
import uuid

from mappings.hl7v2.er7 import MessageHeader, codec_for_charset, parse_header
from mappings.hl7v2.errors import AckOutcome, Hl7Error

_ORIGINAL = {AckOutcome.ACCEPT: "AA", AckOutcome.ERROR: "AE", AckOutcome.REJECT: "AR"}
_ENHANCED = {AckOutcome.ACCEPT: "CA", AckOutcome.ERROR: "CE", AckOutcome.REJECT: "CR"}
_OLD_ERR_VERSIONS = frozenset({"2.1", "2.2", "2.3", "2.3.1", "2.4"})


def ack_code(header: MessageHeader, outcome: AckOutcome) -> str | None:
    """MSA-1 for ``outcome`` under the message's ACK mode, or None when no ACK is to be sent."""
    if not header.enhanced_mode:
        return _ORIGINAL[outcome]
    condition = header.accept_ack_type or "AL"
    if condition == "NE":
        return None
    if condition == "ER" and outcome is AckOutcome.ACCEPT:
        return None
    if condition == "SU" and outcome is not AckOutcome.ACCEPT:
        return None
    return _ENHANCED[outcome]


def duplicate_key(header: MessageHeader) -> str:
    """MSH-3 + MSH-4 + MSH-10: the same key again means a re-sent message (answer the stored ACK).

    Parts are the ER7 text as sent, joined with ``|`` after escaping ``\\`` and ``|``.
    """
    parts = (header.sending_application, header.sending_facility, header.control_id)
    return "|".join(p.replace("\\", "\\\\").replace("|", "\\|") for p in parts)


def _timestamp(now: dt.datetime | None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return now.strftime("%Y%m%d%H%M%S%z")


def new_control_id() -> str:
    """A fresh MSH-10 (20 characters: the ST length limit before v2.7)."""
    return uuid.uuid4().hex[:20].upper()


def build_ack(
    header: MessageHeader,
    outcome: AckOutcome,
    error: Hl7Error | None = None,
    *,
    application: str = "DACS",
    facility: str = "",
    control_id: str | None = None,
    now: dt.datetime | None = None,
) -> bytes | None:
    """The ACK for a message, encoded in its charset, or None when its ACK mode asks for none.

    Parameters
    ----------
    header
        MSH of the message being acknowledged.
    outcome
        ACCEPT only after the message is committed (the caller guarantees it); ERROR or REJECT with
        ``error`` otherwise (``error.outcome`` is the usual source).
    application, facility
        Used as MSH-3/MSH-4 when the incoming MSH-5/MSH-6 are empty.
    control_id, now
        MSH-10 and MSH-7 of the ACK (fresh/current when omitted; fixed values make tests exact).
    """
    code = ack_code(header, outcome)
    if code is None:
        return None
    enc = header.encoding
    fs, cs = enc.field, enc.component
    version = header.version or "2.5.1"
    trigger = header.trigger_event
    msg_type = f"ACK{cs}{trigger}" if trigger else "ACK"
    if trigger and version not in ("2.1", "2.2", "2.3"):
        msg_type += f"{cs}ACK"  # MSH-9.3 (message structure) exists from v2.3.1
    msh = [
        "MSH",
        enc.encoding_characters,
        header.receiving_application or enc.escape_text(application),
        header.receiving_facility or enc.escape_text(facility),
        header.sending_application,
        header.sending_facility,
        _timestamp(now),
        "",
        msg_type,
        enc.escape_text(control_id or new_control_id()),
        header.processing_id or "P",
        version,
    ]
    if header.enhanced_mode or header.charset:
        msh += ["", ""]
        msh += ["NE", "NE"] if header.enhanced_mode else ["", ""]
        if header.charset:
            msh += ["", enc.escape_text(header.charset)]
    old_style = version in _OLD_ERR_VERSIONS
    text = enc.escape_text(error.message) if error is not None else ""
    msa = ["MSA", code, header.control_id_raw]
    if old_style and text:
        msa.append(text)
    segments = [fs.join(msh), fs.join(msa)]
    if error is not None and outcome is not AckOutcome.ACCEPT:
        segments.append(_err_segment(header, error, text, old_style))
    message = "\r".join(segments) + "\r"
    codec = codec_for_charset(header.charset) or "utf-8"
    return message.encode(codec, errors="replace")


def _err_segment(header: MessageHeader, error: Hl7Error, text: str, old_style: bool) -> str:
    enc = header.encoding
    fs, cs, ss = enc.field, enc.component, enc.subcomponent or "&"
    loc = error.location
    code_text = enc.escape_text(error.code_text)
    if old_style:
        # ERR-1 (ELD): segment id ^ sequence ^ field position ^ code identifying error (CE)
        where = [loc.segment, str(loc.sequence), str(loc.field or "")] if loc else ["", "", ""]
        code = ss.join((str(error.code), code_text, "HL70357"))
        return fs.join(("ERR", cs.join([*where, code])))
    location = ""
    if loc is not None:
        parts = [loc.segment, str(loc.sequence), *(str(p) if p else "" for p in
                 (loc.field, loc.repetition, loc.component, loc.subcomponent))]
        location = cs.join(parts).rstrip(cs)
    fields = ["ERR", "", location, cs.join((str(error.code), code_text, "HL70357")), "E", "", "", "", text]
    return fs.join(fields)


def build_reject(
    raw: bytes, error: Hl7Error, *, application: str = "DACS", facility: str = ""
) -> bytes | None:
    """An AE/AR for bytes that could not be processed, if an MSH can be found in them; else None.

    Used for bad MLLP framing and for messages that fail before a header is available.
    """
    header = parse_header(raw)
    if header is None:
        return None
    return build_ack(header, error.outcome, error, application=application, facility=facility)


def build_batch_ack(
    batch_header: bytes | None, acks: list[bytes], *, now: dt.datetime | None = None
) -> bytes:
    """A batch acknowledgement (HL7 v2.5 §2.10.3): BHS, the ACKs, BTS with their count.

    Sending/receiving application and facility are swapped from the incoming BHS (if any) and BHS-12
    (reference batch control id) echoes its BHS-11. Messages whose ACK mode asks for no ACK are simply
    absent, which the batch protocol allows ("only errors acknowledged" style).
    """
    fs, enc_chars = "|", "^~\\&"
    incoming: list[str] = []
    if batch_header and len(batch_header) > 4 and batch_header[:3] in (b"BHS", b"FHS"):
        text = batch_header.decode("latin-1")
        fs = text[3]
        incoming = ["BHS", fs, *text.split(fs)[1:]]
        enc_chars = incoming[2] or enc_chars

    def field(n: int) -> str:
        return incoming[n] if n < len(incoming) else ""

    bhs = ["BHS", enc_chars, field(5) or "DACS", field(6), field(3), field(4), _timestamp(now), "", "", "",
           new_control_id(), field(11)]
    header = fs.join(bhs).rstrip(fs) + "\r"
    trailer = f"BTS{fs}{len(acks)}\r"
    return header.encode("latin-1", errors="replace") + b"".join(acks) + trailer.encode("ascii")
