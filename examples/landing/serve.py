"""Serve this folder on your machine, the function's URL written into the form as the page is sent.

    python3 examples/landing/serve.py                         # http://127.0.0.1:8000, posting to :8080
    python3 examples/landing/serve.py --port 8001 --endpoint http://127.0.0.1:9090/
    http://127.0.0.1:8000/?endpoint=http://127.0.0.1:9090/    # one visit, JavaScript on or off

index.html names the function twice, in the form's action (the plain post, JavaScript off) and in
data-endpoint (fetch). app.js reads ?endpoint= itself, but a page without JavaScript cannot: this server
writes the URL into both before sending the page. Only for trying the page locally; published, the page
is static and its tag holds the function's URL. Python's standard library only.
"""

from __future__ import annotations

import argparse
import html
import tomllib
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
SHIPPED_ENDPOINT = "http://127.0.0.1:8080/"  # what index.html posts to as shipped (`make run`)


def valid_endpoint(value: str | None) -> str | None:
    """An http(s) URL with a host, or None: never a javascript: or data: URL in the form's action."""
    if not value:
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.hostname else None


def page(endpoint: str | None) -> bytes:
    """index.html with the function's URL in action and data-endpoint."""
    text = (HERE / "index.html").read_text(encoding="utf-8")
    if endpoint:
        text = text.replace(f'"{SHIPPED_ENDPOINT}"', f'"{html.escape(endpoint, quote=True)}"')
    return text.encode("utf-8")


class Handler(SimpleHTTPRequestHandler):
    """The folder as files; index.html with ?endpoint= (else --endpoint) as the function's URL."""

    endpoint: str | None = None

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path not in ("/", "/index.html"):
            super().do_GET()
            return
        asked = parse_qs(url.query).get("endpoint", [""])[-1]
        body = page(valid_endpoint(asked) or self.endpoint)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def make_server(port: int, endpoint: str | None = None, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    handler = type("ConfiguredHandler", (Handler,), {"endpoint": endpoint})
    server = ThreadingHTTPServer((host, port), partial(handler, directory=str(HERE)))
    server.daemon_threads = True
    return server


def origin_warning(origin: str, config: Path) -> str | None:
    """The function refuses a page whose origin its route does not list: say so before the first try."""
    if not config.is_file():
        return None
    routes = tomllib.loads(config.read_text(encoding="utf-8")).get("routes", {})
    origins = routes.get("default", {}).get("cors_origins", [])
    if origin in origins or "*" in origins:
        return None
    return (
        f"warning: {origin} is not in routes.default.cors_origins of {config}: add it there (and to redirect), "
        "or the browser will not send the form"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="the page's port (default 8000)")
    parser.add_argument("--endpoint", help=f"the function's URL (default {SHIPPED_ENDPOINT}, `make run`)")
    parser.add_argument(
        "--config", type=Path, default=HERE.parent.parent / "formcall.toml", help="the function's config to check"
    )
    args = parser.parse_args()
    endpoint = valid_endpoint(args.endpoint)
    if args.endpoint and not endpoint:
        parser.error(f"--endpoint {args.endpoint!r} is not an http(s) URL")
    server = make_server(args.port, endpoint)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    if warning := origin_warning(origin, args.config):
        print(warning)
    print(f"the page: {origin}/  (posting to {endpoint or SHIPPED_ENDPOINT}; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
