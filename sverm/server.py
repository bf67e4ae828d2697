"""`python -m sverm.server`: Daphne's command line with credentials kept out of the logs.

WebSocket clients may authenticate with `?token=<JWT or API key>` (browsers cannot set headers
on a WebSocket), and Daphne's access log prints each HTTP request's path with its query string.
This entry point takes Daphne's arguments unchanged and runs Daphne with a server whose action
log sees every path with the values of credential parameters replaced by `[redacted]`;
`RedactQuerySecrets` does the same for log records (Django's and Daphne's `runserver` lines, and
Uvicorn's access and WebSocket lines through sverm/uvicorn_logging.yaml, the production server's
log config). In the embedded default it also starts the in-process executor and its reaper with
the server.
"""

import logging
import re
import sys
from collections.abc import Mapping
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
# Query parameters that carry a credential, compared after percent-decoding and lower-casing.
SECRET_QUERY_PARAMETERS = frozenset({"token", "access_token", "api_key", "key"})
# One `name=value` pair of a query string: after `?` (or a separator), up to the next separator,
# fragment, whitespace or quote, so it also works inside a whole log line.
_QUERY_PAIR = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#?\s\"']+)=(?P<value>[^&;#\s\"']*)")


def redact_query_secrets(text: str) -> str:
    """`text` with the value of every credential query parameter replaced by `[redacted]`."""

    def replace(match: re.Match) -> str:
        if unquote_plus(match["name"]).strip().lower() not in SECRET_QUERY_PARAMETERS:
            return match[0]
        return f"{match['lead']}{match['name']}={REDACTED}"

    if "=" not in text:
        return text
    return _QUERY_PAIR.sub(replace, text)


class RedactQuerySecrets(logging.Filter):
    """A logging filter that redacts credentials in query strings from each record, whichever
    logger wrote it: on sverm's console handler (settings.LOGGING) and on Uvicorn's handlers.

    String arguments are redacted in place, so a formatter that reads `record.args` (Uvicorn's
    AccessFormatter unpacks them) keeps working; a message that still shows a credential after
    that (one spread over the template, or from a non-string argument) is replaced by its
    redacted text. A traceback is formatted here and redacted too: exception messages quote URLs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_argument(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _redacted_argument(arg) for key, arg in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it itself
            return True
        redacted = redact_query_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_query_secrets(record.exc_text)
        return True


_TRACEBACK_FORMATTER = logging.Formatter()


def _redacted_argument(value):
    return redact_query_secrets(value) if isinstance(value, str) else value


def command_line_interface():
    """Daphne's CommandLineInterface, serving through a server that redacts logged paths.

    Daphne is imported here, not at module level: importing `daphne.server` installs Twisted's
    asyncio reactor, which processes that only read `RedactQuerySecrets` (Celery, manage.py)
    should not do.
    """
    from daphne.cli import CommandLineInterface
    from daphne.server import Server

    class RedactingServer(Server):
        def run(self):
            # The app is loaded (Django is set up): in the embedded default, start executing and
            # reaping now, so runs a previous process left `running` are resumed after a restart.
            from swarms.executor import start_embedded_executor

            start_embedded_executor()
            super().run()

        def log_action(self, protocol, action, details):
            if isinstance(details.get("path"), str):
                details = {**details, "path": redact_query_secrets(details["path"])}
            super().log_action(protocol, action, details)

    class RedactingCommandLineInterface(CommandLineInterface):
        server_class = RedactingServer

    return RedactingCommandLineInterface


def main(argv: list[str] | None = None) -> None:
    command_line_interface()().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
