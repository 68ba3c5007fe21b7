"""A calendar-query answer read once: its objects (no collections) with the
data ``parse_data`` reads for each."""

from __future__ import annotations

from xml.etree.ElementTree import fromstring
from xml.sax.saxutils import escape

from hypothesis import given
from hypothesis import strategies as st

from commlink.providers.caldav import davxml as dav

_COLLECTION = "/dav/cal1/"
_HREFS = (
    *("/dav/cal1/", "/dav/cal1", "/dav/cal1/sub/", "/dav/cal1/a.ics", "/dav/cal1/b%20c.ics"),
    *("http://h.example/dav/cal1/d.ics", "", "  /dav/cal1/e.ics  "),
)

_response = st.fixed_dictionaries(
    {
        "href": st.sampled_from(_HREFS),
        "status": st.sampled_from(["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "junk"]),
        "collection": st.booleans(),
        "etag": st.none() | st.sampled_from(['"e1"', 'W/"e2"', "e3", '""']),
        "modified": st.none() | st.sampled_from(["Sun, 06 Dec 2026 00:31:01 GMT", "bad"]),
        "data": st.none() | st.text(alphabet="BEGIN:VCALENDAR\r\n&<>é", max_size=30),
    }
)


def _document(responses: list[dict[str, object]]) -> str:
    parts = []
    for r in responses:
        props = "<d:resourcetype>" + ("<d:collection/>" if r["collection"] else "")
        props += "</d:resourcetype>"
        if r["etag"] is not None:
            props += f"<d:getetag>{escape(str(r['etag']))}</d:getetag>"
        if r["modified"] is not None:
            props += f"<d:getlastmodified>{r['modified']}</d:getlastmodified>"
        if r["data"] is not None:
            props += f"<c:calendar-data>{escape(str(r['data']))}</c:calendar-data>"
        parts.append(
            f"<d:response><d:href>{escape(str(r['href']))}</d:href><d:propstat>"
            f"<d:prop>{props}</d:prop><d:status>{r['status']}</d:status></d:propstat>"
            "</d:response>"
        )
    return (
        '<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        + "".join(parts)
        + "</d:multistatus>"
    )


@given(st.lists(_response, max_size=6))
def test_one_reading_gives_the_listing_and_its_data(responses: list[dict[str, object]]) -> None:
    tree = fromstring(_document(responses))
    listed = [obj for obj, _ in dav.parse_query_objects(tree, _COLLECTION)]
    # properties count only in a 2xx propstat (a status line without a code counts as 200)
    kept = [
        r
        for r in responses
        if dav.href_path(str(r["href"]))
        and dav.href_key(str(r["href"])) != dav.href_key(_COLLECTION)
        and not (r["collection"] and "404" not in str(r["status"]))
    ]
    assert len(listed) == len(kept)  # not the calendar itself, nor a collection in it
    # the provider reads an answer one response at a time: its data as parse_data reads it
    for response in tree.iter("{DAV:}response"):
        found = dav.parse_query_objects(response, _COLLECTION)
        if found:
            (item,) = dav.parse_data(response)
            ((obj, data),) = found
            assert (obj.href, obj.etag, obj.modified, data) == (
                item.href,
                item.etag,
                item.modified,
                item.data,
            )
