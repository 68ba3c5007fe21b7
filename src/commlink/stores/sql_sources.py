"""``SqlStore.message_source``: one read of the message's copies and associations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..model import Visibility
from ..records import MessageSource, Viewer
from .copies import Holder
from .sources import chosen_source
from .sql_rows import attachments_from_json
from .sql_schema import channels, message_assocs, message_copies, messages

__all__ = ["message_source"]


def message_source(
    conn: Connection, thread_id: str, message_id: str, viewer: Viewer
) -> MessageSource | None:
    found = conn.execute(
        sa.select(messages.c.pk).where(
            messages.c.message_id == message_id, messages.c.thread_id == thread_id
        )
    ).first()
    if found is None:
        return None
    pk = int(found[0])
    copies = conn.execute(
        sa.select(
            message_copies.c.channel_id,
            message_copies.c.attachments,
            channels.c.user_id,
            channels.c.visibility,
        )
        .join(channels, channels.c.id == message_copies.c.channel_id)
        .where(message_copies.c.message_pk == pk)
    ).all()
    assoc = message_assocs.c
    locations = conn.execute(
        sa.select(assoc.channel_id, assoc.scope_id, assoc.provider_id).where(assoc.message_pk == pk)
    ).all()
    return chosen_source(
        viewer,
        message_id,
        (
            (Holder(c, user, Visibility(vis)), attachments_from_json(text))
            for c, text, user, vis in copies
        ),
        ((c, s, p) for c, s, p in locations),
    )
