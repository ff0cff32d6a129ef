"""Text that leaves rssr for a person or a log: secrets in URLs redacted, control characters escaped.

Input names are input-controlled: a signed URL carries its credentials (`https://user:pass@host/...`,
`?X-Amz-Signature=...&X-Amz-Credential=...`, an Azure `sig=`, a `token=`), and a granule folder, zip member or
STAC href may hold ESC or a newline that would drive the terminal or forge a second `error:` line. Every edge
where such text leaves the process (error and warning lines, batch scene lines, `rssr info`, the JSON log, the
output's RSSR_SOURCE tag) goes through `redact`, and every line for a terminal through `printable` too.
"""

from __future__ import annotations

import re

REDACTED = "***"
# scheme://userinfo@host: the whole userinfo (a user name alone can be a token, as GitHub's are)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]+@")
# a query parameter whose value is a credential: AWS/GCS signed URLs, Azure SAS, OAuth and API keys
_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:[\w.\-]*(?:token|secret|signature|password|passwd|credential|api_key|apikey)|sig|key|pwd|auth)=)"
    r"[^&#\s\"'<>:)]*"
)


def redact(text: str) -> str:
    """`text` with every URL's user:password@ and credential query values replaced by ***; the one place
    that knows what a secret looks like."""
    return _SECRET_PARAMETER.sub(rf"\g<1>{REDACTED}", _USERINFO.sub(rf"\g<1>{REDACTED}@", text))


def printable(text: str) -> str:
    """`text` on one line with every non-printable character escaped as Python writes it (ESC -> \\x1b,
    newline -> \\n, U+202E -> \\u202e): nothing in a name can move the cursor or start a forged line."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def user_text(text: str) -> str:
    """What a terminal line may show of input-controlled text: redacted, then made printable."""
    return printable(redact(text))
