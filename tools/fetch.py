"""The built-in `http_fetch` tool: GET a public web page and hand the model its readable text.

Every destination, the first URL and each redirect hop, passes the SSRF guard (sverm/ssrf.py)
and the request goes to the very address that was checked (Host header and TLS SNI carry the
name), as webhook delivery does. Proxies from the environment are ignored. The time, the bytes
read and the characters returned are capped; binary content is refused. httpx and BeautifulSoup
are imported by the first call: a process whose agents fetch nothing does not hold them.
"""

import asyncio
import codecs
import re
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from sverm.ssrf import DestinationRefused, Target, resolve_target
from swarms.engine.tools import ToolError, ToolSpec

if TYPE_CHECKING:
    import httpx

NAME = "http_fetch"
DEFAULT_MAX_CHARS = 8_000
MAX_CHARS_LIMIT = 20_000
MIN_CHARS = 100
MAX_REDIRECTS = 5
ERROR_BODY_CHARS = 200
# What an error page may cost to read: enough for its first 200 characters of text.
ERROR_BODY_BYTES = 65_536
USER_AGENT = "sverm-http-fetch/1.0 (+https://github.com/sverm)"
ACCEPT = (
    "text/html,application/xhtml+xml,text/plain;q=0.9,text/markdown;q=0.9,"
    "application/json;q=0.9,application/xml;q=0.8,text/*;q=0.5"
)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset(
    {"text/plain", "text/markdown", "text/csv", "application/json", "application/xml", "text/xml"}
)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Elements that are not the page's content (code, chrome, navigation, forms).
DROPPED_ELEMENTS = (
    "head", "script", "style", "noscript", "template", "svg", "nav", "footer", "header", "aside",
    "form", "iframe", "object", "embed",
)  # fmt: skip
BLOCK_ELEMENTS = (
    "address", "article", "blockquote", "br", "dd", "details", "dialog", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "main",
    "ol", "p", "pre", "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul",
    "caption",
)  # fmt: skip
_SPACES = re.compile(r"[ \t\f\v\r\u00a0]+")


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_text(media: str) -> bool:
    # `+xml` only under application/ (RSS, Atom): image/svg+xml is an image.
    return (
        media in TEXT_TYPES
        or media.endswith("+json")
        or (media.startswith("application/") and media.endswith("+xml"))
    )


def _codec(name: str | None) -> str | None:
    """`name` if Python knows the encoding, else None."""
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


def _collapse(text: str) -> str:
    """Whitespace runs as one space, one line per block, no empty lines."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def html_to_text(body: bytes, charset: str | None) -> tuple[str, str]:
    """(title, readable text) of an HTML page: the page's chrome and code dropped, one line
    per block element, whitespace collapsed, link texts kept."""
    from bs4 import BeautifulSoup
    from bs4.dammit import EncodingDetector

    # The header's charset, else the page's own <meta> declaration, else UTF-8; decoded here so
    # BeautifulSoup never guesses (its guess is slow on a large page and varies).
    encoding = _codec(charset) or _codec(
        EncodingDetector.find_declared_encoding(body, is_html=True)
    )
    soup = BeautifulSoup(body.decode(encoding or "utf-8", errors="replace"), "html.parser")
    title = _collapse(soup.title.get_text(" ")) if soup.title else ""
    title = title.replace("\n", " ")
    for element in soup.find_all(DROPPED_ELEMENTS):
        element.decompose()
    for element in soup.find_all("title"):
        element.decompose()
    for element in soup.find_all("li"):
        element.insert(0, "- ")
    for element in soup.find_all(BLOCK_ELEMENTS):
        element.insert_before("\n")
        element.insert_after("\n")
    for element in soup.find_all(("td", "th")):
        element.insert_after(" ")
    return title, _collapse(soup.get_text())


def plain_text(body: bytes, charset: str | None) -> str:
    return body.decode(_codec(charset) or "utf-8", errors="replace")


class _Decoder:
    """Undoes a gzip or deflate Content-Encoding without ever holding more than the cap: httpx's
    own decoder inflates a whole chunk at once, which a compression bomb turns into megabytes."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.zlib = None
        if encoding in ("gzip", "x-gzip"):
            self.zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self.zlib = zlib.decompressobj(zlib.MAX_WBITS)
        elif encoding not in ("", "identity"):
            raise ToolError(f"The server sent an unsupported content encoding ({encoding}).")
        self.started = False

    def decode(self, data: bytes, limit: int) -> bytes:
        """At most `limit` bytes of what `data` decodes to (the rest is not inflated)."""
        if self.zlib is None:
            return data[:limit]
        try:
            out = self.zlib.decompress(data, limit)
        except zlib.error:
            if self.encoding != "deflate" or self.started:
                raise ToolError("The server sent a body that does not decompress.") from None
            # "deflate" is often sent raw, without the zlib wrapper.
            self.zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            self.started = True
            return self.decode(data, limit)
        self.started = True
        return out


async def _read(response: "httpx.Response", max_bytes: int) -> tuple[bytes, bool]:
    """The body, up to `max_bytes` (decoded), and whether there was more."""
    decoder = _Decoder(response.headers.get("content-encoding", "").strip().lower())
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += decoder.decode(chunk, max_bytes + 1 - len(body))
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False


class HttpFetch:
    """`http_fetch(url, max_chars?)`: the page's text, under a header saying what was fetched."""

    def __init__(
        self,
        *,
        timeout_seconds: float | None = None,
        max_bytes: int | None = None,
        default_max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self.timeout_seconds = float(
            timeout_seconds
            if timeout_seconds is not None
            else settings.SVERM_TOOL_FETCH_TIMEOUT_SECONDS
        )
        self.max_bytes = int(
            max_bytes if max_bytes is not None else settings.SVERM_TOOL_FETCH_MAX_BYTES
        )
        self.default_max_chars = default_max_chars
        self.spec = ToolSpec(
            name=NAME,
            description=(
                "Fetch a public web page or text document with an HTTP GET and return its "
                "readable text: for HTML the title and the text without scripts, styles and "
                "navigation; plain text, Markdown, CSV, JSON and XML as they are. Images, PDFs "
                "and other binary content are refused, and so are private and local addresses. "
                f"Long pages are cut to `max_chars` characters ({default_max_chars} by default)."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "url": {
                        "type": "string",
                        "description": "The absolute http:// or https:// URL to fetch.",
                    },
                    "max_chars": {
                        "type": "integer",
                        "minimum": MIN_CHARS,
                        "maximum": MAX_CHARS_LIMIT,
                        "description": (
                            "How many characters of the page's text to return at most "
                            f"(default {default_max_chars})."
                        ),
                    },
                },
                "required": ["url"],
                "additionalProperties": False,
            },
        )

    async def invoke(self, arguments: Mapping[str, Any]) -> str:
        url = str(arguments["url"]).strip()
        max_chars = int(arguments.get("max_chars") or self.default_max_chars)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._fetch(url, max_chars)
        except TimeoutError:
            raise ToolError(
                f"Fetching {url} took longer than {self.timeout_seconds:g} s; gave up."
            ) from None

    async def _fetch(self, url: str, max_chars: int) -> str:
        """GET `url`, following at most MAX_REDIRECTS redirects, each checked by the guard."""
        import httpx

        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise ToolError(
                f"Only http and https URLs can be fetched, not {scheme or 'a URL without a scheme'}"
                f" ({url})."
            )
        allowed_hosts = list(settings.SVERM_TOOL_FETCH_ALLOWED_HOSTS)
        async with httpx.AsyncClient(
            follow_redirects=False, timeout=httpx.Timeout(self.timeout_seconds), trust_env=False
        ) as client:
            for hop in range(MAX_REDIRECTS + 1):
                target = await self._target(url, allowed_hosts, first=hop == 0)
                try:
                    async with client.stream(
                        "GET",
                        target.url,
                        headers=self._headers(target),
                        extensions=self._tls(target),
                    ) as response:
                        location = response.headers.get("location")
                        if response.status_code not in REDIRECT_STATUSES or not location:
                            return await self._result(url, response, max_chars)
                except httpx.TimeoutException:
                    raise ToolError(
                        f"Fetching {url} took longer than {self.timeout_seconds:g} s; gave up."
                    ) from None
                except httpx.ConnectError as exc:
                    host = urlsplit(url).hostname
                    raise ToolError(f"Could not connect to {host}: {exc or 'no detail'}.") from None
                except httpx.HTTPError as exc:
                    raise ToolError(
                        f"Fetching {url} failed: {type(exc).__name__}: {exc or 'no detail'}."
                    ) from None
                following = urljoin(url, location.strip())
                if hop == MAX_REDIRECTS:
                    raise ToolError(
                        f"Too many redirects: {MAX_REDIRECTS} followed, and {url} redirects "
                        f"again (to {following})."
                    )
                url = following
        raise AssertionError("unreachable: the last hop returns or raises")

    async def _target(self, url: str, allowed_hosts: list[str], *, first: bool) -> Target:
        """The checked, pinned destination of `url`, or a ToolError the model can read."""
        where = "" if first else "The page redirected to a refused destination: "
        try:
            return await asyncio.to_thread(
                resolve_target, url, allowed_hosts=allowed_hosts, what="fetch"
            )
        except DestinationRefused as exc:
            raise ToolError(f"{where}{exc}") from None
        except UnicodeError:
            raise ToolError(f"The URL {url} has an invalid host name.") from None
        except OSError as exc:
            host = urlsplit(url).hostname
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ToolError(f"The host {host} could not be resolved ({reason}).") from None

    @staticmethod
    def _headers(target: Target) -> dict[str, str]:
        return {
            "host": target.host_header,
            "user-agent": USER_AGENT,
            "accept": ACCEPT,
            "accept-encoding": "gzip, deflate",
        }

    @staticmethod
    def _tls(target: Target) -> dict[str, str]:
        return {"sni_hostname": target.server_name} if target.url.startswith("https") else {}

    async def _result(self, url: str, response: "httpx.Response", max_chars: int) -> str:
        content_type = response.headers.get("content-type", "").strip()
        media = _media_type(content_type)
        charset = response.charset_encoding
        readable = media in HTML_TYPES or _is_text(media)
        if response.status_code >= 400:
            snippet = ""
            if readable:
                body, _ = await _read(response, min(self.max_bytes, ERROR_BODY_BYTES))
                _title, text = await self._text(media, body, charset)
                snippet = " ".join(text.split())[:ERROR_BODY_CHARS]
            reason = f" {response.reason_phrase}" if response.reason_phrase else ""
            said = f": {snippet}" if snippet else "."
            raise ToolError(f"HTTP {response.status_code}{reason} from {url}{said}")
        if response.status_code == 204:
            cut, title, text = False, "", ""
        elif not readable:
            raise ToolError(
                f"The content at {url} is {media or 'of no declared type'}, which http_fetch "
                "does not read (it reads HTML, plain text, Markdown, CSV, JSON and XML)."
            )
        else:
            body, cut = await _read(response, self.max_bytes)
            title, text = await self._text(media, body, charset)
        header = [f"URL: {url}", f"Status: {response.status_code}"]
        if media in HTML_TYPES:
            header.append(f"Title: {title or '(none)'}")
        if content_type:
            header.append(f"Content-Type: {content_type}")
        if cut:
            header.append(
                f"Note: the page is larger than {self.max_bytes} bytes; only the first "
                f"{self.max_bytes} bytes were read."
            )
        total = len(text)
        if total > max_chars:
            text = text[:max_chars] + f"\n[cut: the text has {total} characters, {max_chars} shown]"
        return "\n".join(header) + "\n\n" + text

    @staticmethod
    async def _text(media: str, body: bytes, charset: str | None) -> tuple[str, str]:
        """(title, text): parsing a large page takes a while, off the run's event loop."""
        if media in HTML_TYPES:
            return await asyncio.to_thread(html_to_text, body, charset)
        return "", plain_text(body, charset)
