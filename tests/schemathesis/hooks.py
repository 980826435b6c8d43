"""Schemathesis hooks for the contract test (`tests/tests/integration/openapi.rs`): what a real
client knows and no schema can say.
"""

import base64
import itertools
import re

import schemathesis
from hypothesis import strategies as st

# List cursors are `format: cursor`: opaque values the server handed out in `next_cursor`, which
# no regular expression can describe. They are made the way `platform::cursor::Cursor::encode`
# makes them (base64url without padding of `<unix micros>|<uuid>`, within the years the server
# accepts), so fuzzed list requests reach the query instead of stopping at 400 `invalid_cursor`.

# 2000-01-01 and 9999-12-31 in microseconds since the Unix epoch.
EARLIEST_MICROS = 946_684_800_000_000
LATEST_MICROS = 253_402_214_400_000_000 - 1


def encode(micros: int, uuid) -> str:
    text = f"{micros}|{uuid}".encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


schemathesis.openapi.format(
    "cursor",
    st.builds(encode, st.integers(EARLIEST_MICROS, LATEST_MICROS), st.uuids()),
)


# An `Idempotency-Key` names one logical request (the document asks for a fresh key each time).
# The generator repeats short keys ("0", "00", ...) across different bodies, which the server
# rightly answers 422 `idempotency_key_reused` (or 409 while the first runs): a rule about two
# requests that no schema of one request can state. A valid generated key gets a unique suffix,
# so it stays valid and names only this request; an invalid one is sent as generated.
VALID_KEY = re.compile(r"[!-~]{1,255}")
KEY_MAX = 255
sequence = itertools.count()


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    for name, value in list((case.headers or {}).items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and VALID_KEY.fullmatch(value):
            suffix = f"-{next(sequence)}"
            case.headers[name] = value[: KEY_MAX - len(suffix)] + suffix


# The share card is PNG bytes (schema: a string with `contentMediaType: image/png`): check the
# signature, then hand the bytes over as a string for the schema.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@schemathesis.deserializer("image/png")
def png(ctx, response):
    if not response.content.startswith(PNG_SIGNATURE):
        raise ValueError("the body is not a PNG")
    return response.content.decode("latin-1")
