"""MLLP (HL7 v2 over TCP) receiving: framing, the asyncio listener, and the RIS message handler.

``MllpServer(Hl7Receiver(sink), host, port).start()`` is all ``dacs serve`` needs;
parsing and mapping live in :mod:`mappings.hl7v2` (pure).
"""

from integrations.mllp.framing import Frame, FramingError, MllpDecoder, frame
from integrations.mllp.handler import Hl7Receiver, Hl7Sink, Receipt
from integrations.mllp.server import MllpServer, UnidentifiableMessage, reject_with_ar

__all__ = [
    "Frame",
    "FramingError",
    "Hl7Receiver",
    "Hl7Sink",
    "MllpDecoder",
    "MllpServer",
    "Receipt",
    "UnidentifiableMessage",
    "frame",
    "reject_with_ar",
]
