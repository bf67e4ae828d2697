"""A web page on loopback for the tool tests: what `http_fetch` reads when a test allows
127.0.0.1 (SVERM_TOOL_FETCH_ALLOWED_HOSTS), served from a thread of the test process."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TITLE = "Hydrogen in Norway"
PAGE = f"""<html><head><title>{TITLE}</title><style>p {{ color: red }}</style></head>
<body><nav>menu</nav><p>Norway plans 2 GW of electrolysers by 2030.</p>
<script>var secret = 1;</script></body></html>""".encode()


class _Page(BaseHTTPRequestHandler):
    fetched: list[str]

    def do_GET(self) -> None:
        self.fetched.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args) -> None:
        return


class PageServer:
    """`url` serves PAGE; `fetched` lists the paths requested."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        handler = type("Handler", (_Page,), {"fetched": self.fetched})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/hydrogen"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "PageServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
