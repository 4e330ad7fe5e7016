"""What the fake servers share: a ThreadingHTTPServer on a loopback
address, optionally TLS, run on a background thread by a context manager."""
import ipaddress
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import tls as _tls


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    ssl_context = None
    owner = None

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.open_sockets = set()
        self.sockets_lock = threading.Lock()

    def process_request(self, request, client_address):
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_connections(self):
        """Hang up on every client still connected (kept-alive ones too)."""
        with self.sockets_lock:
            socks = list(self.open_sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # The handshake happens on the handler's thread (first read), so
            # a client that stalls or fails it does not block accept().
            sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        # Clients that hang up or refuse our certificate are part of the
        # tests; keep pytest's output clean.
        import sys
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "corral-fake/1"
    sys_version = ""

    def log_message(self, format, *args):
        pass

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    @property
    def fake(self):
        return self.server.owner

    def read_body(self):
        """The request body: Content-Length, or chunked (trailers dropped)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return b"".join(self.iter_chunked())
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def iter_chunked(self):
        """Yield the chunks of a `Transfer-Encoding: chunked` request body."""
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("client closed inside a chunked body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return
            left = size
            while left:
                data = self.rfile.read(left)
                if not data:
                    raise ConnectionError("client closed inside a chunk")
                left -= len(data)
                yield data
            self.rfile.readline(3)

    def write_chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class BackgroundServer:
    """Base class: bind `host`:`port` (0 = a free port) at construction,
    serve on a thread between start() and stop() (or `with server:`).

    `tls` is None (plain HTTP), a tls.CertPaths, or an ssl.SSLContext.
    Attributes: host, port, scheme, url (no trailing slash)."""

    handler_class = QuietHandler

    def __init__(self, host="127.0.0.1", port=0, tls=None):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"test servers listen on 127.0.0.0/8 only, not {host}")
        self.httpd = _HTTPServer((host, port), self.handler_class)
        self.httpd.owner = self
        if isinstance(tls, ssl.SSLContext):
            self.httpd.ssl_context = tls
        elif tls is not None:
            self.httpd.ssl_context = _tls.server_context(tls)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if self.httpd.ssl_context else "http"
        self.url = f"{self.scheme}://{host}:{self.port}"
        self._thread = None
        self.lock = threading.Lock()

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self.httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name=type(self).__name__, daemon=True)
            self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self.httpd.shutdown()
            self.httpd.close_connections()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
