"""A client generated from docs/openapi.json (openapi-python-client) drives a session:
create -> input -> delete, reading every answer through the generated, typed models.

Run by tests/it/typed_client.rs, which generates the package `awk_client` into a temporary
directory on PYTHONPATH and starts the server. Prints a JSON report; exits non-zero (with a
traceback) on any unexpected answer: the client raises on a status the document does not list.
"""

import json
import os
import time

from awk_client import AuthenticatedClient
from awk_client.api.history import get_session, list_session_events
from awk_client.api.sessions import create_session, delete_session, post_input
from awk_client.models import (
    Error,
    EventName,
    EventPage,
    Session,
    SessionConfig,
    SessionCreated,
    SessionStatus,
    UserMessage,
    UserMessageType,
)

client = AuthenticatedClient(
    base_url=os.environ["AGENT_WEBKIT_URL"],
    token=os.environ["AGENT_WEBKIT_TOKEN"],
    raise_on_unexpected_status=True,
)
report = {}

with client as c:
    created = create_session.sync(client=c, body=SessionConfig(fixture="plain_qa"))
    assert isinstance(created, SessionCreated), created
    assert created.protocol_version == "1.0"
    sid = created.session_id
    report["session_id"] = str(sid)

    said = post_input.sync_detailed(
        sid, client=c, body=UserMessage(type_=UserMessageType.USER_MESSAGE, content="hello")
    )
    assert said.status_code == 204, said

    # The turn's events, typed, until its `result`.
    deadline = time.monotonic() + 20
    names = []
    while EventName.RESULT not in names:
        assert time.monotonic() < deadline, names
        page = list_session_events.sync(sid, client=c)
        assert isinstance(page, EventPage), page
        names = [e.event for e in page.events]
        time.sleep(0.05)
    report["events"] = [str(n) for n in names]

    session = get_session.sync(sid, client=c)
    assert isinstance(session, Session), session
    assert session.status == SessionStatus.ACTIVE, session.status
    report["turns"] = session.turns

    deleted = delete_session.sync_detailed(sid, client=c)
    assert deleted.status_code == 204, deleted
    closed = get_session.sync(sid, client=c)
    assert isinstance(closed, Session) and closed.status == SessionStatus.CLOSED, closed

    # A documented error comes back as the typed `Error`.
    late = post_input.sync(
        sid, client=c, body=UserMessage(type_=UserMessageType.USER_MESSAGE, content="late")
    )
    assert isinstance(late, Error) and late.code == "session_closed", late
    report["after_delete"] = late.code

print(json.dumps({"ok": True, **report}))
