"""SOAP envelopes for ``EwsServer``: namespaces, response messages, faults."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

__all__ = [
    "E",
    "M",
    "S",
    "T",
    "envelope",
    "error_message",
    "server_busy_fault",
    "stamp",
    "sub",
    "success_message",
]

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"

for _prefix, _uri in (("s", S), ("m", M), ("t", T), ("e", E)):
    ET.register_namespace(_prefix, _uri)


def sub(
    parent: ET.Element, ns: str, tag: str, text: str | None = None, **attrib: str
) -> ET.Element:
    """Append ``{ns}tag`` to ``parent`` with optional text and attributes."""
    child = ET.SubElement(parent, f"{{{ns}}}{tag}", attrib)
    if text is not None:
        child.text = text
    return child


def stamp(value: datetime) -> str:
    """An xs:dateTime in UTC, as Exchange writes them."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(body: ET.Element | None) -> bytes:
    """A SOAP envelope with the Exchange 2019 version header around ``body``."""
    root = ET.Element(f"{{{S}}}Envelope")
    header = sub(root, S, "Header")
    sub(
        header,
        T,
        "ServerVersionInfo",
        MajorVersion="15",
        MinorVersion="2",
        MajorBuildNumber="1118",
        MinorBuildNumber="7",
        Version="V2017_07_11",
    )
    wrapper = sub(root, S, "Body")
    if body is not None:
        wrapper.append(body)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def success_message(messages: ET.Element, operation: str) -> ET.Element:
    message = sub(messages, M, f"{operation}ResponseMessage", ResponseClass="Success")
    sub(message, M, "ResponseCode", "NoError")
    return message


def error_message(messages: ET.Element, operation: str, code: str, text: str) -> ET.Element:
    message = sub(messages, M, f"{operation}ResponseMessage", ResponseClass="Error")
    sub(message, M, "MessageText", text)
    sub(message, M, "ResponseCode", code)
    sub(message, M, "DescriptiveLinkKey", "0")
    return message


def server_busy_fault(back_off_ms: int) -> bytes:
    """The SOAP fault Exchange answers when a client is throttled."""
    root = ET.Element(f"{{{S}}}Envelope")
    body = sub(root, S, "Body")
    fault = sub(body, S, "Fault")
    ET.SubElement(fault, "faultcode").text = "a:ErrorServerBusy"
    ET.SubElement(fault, "faultstring").text = "The server cannot service this request right now."
    detail = ET.SubElement(fault, "detail")
    sub(detail, E, "ResponseCode", "ErrorServerBusy")
    sub(detail, E, "Message", "The server cannot service this request right now.")
    xml = sub(detail, T, "MessageXml")
    sub(xml, T, "Value", str(back_off_ms), Name="BackOffMilliseconds")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
