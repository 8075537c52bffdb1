"""Notes over HTTP, kept in PostgreSQL: GET /health, POST /notes (body = text), GET /notes (JSON).

Connection settings come from libpq's environment (PGHOST, PGUSER, PGPASSWORD, PGDATABASE).
"""

import json
import signal
import sys
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2


def connect(wait_s=120):
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return psycopg2.connect("")
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise
            print(f"waiting for the database: {str(exc).strip()}", flush=True)
            time.sleep(1)


@contextmanager
def cursor(wait_s=5):
    """One connection per request: committed on success, closed always."""
    conn = connect(wait_s)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def setup():
    with cursor(120) as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL, "
                    "at timestamptz NOT NULL DEFAULT now())")


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, payload):
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path not in ("/health", "/notes"):
            return self._send(404, {"error": "not found"})
        try:
            with cursor() as cur:
                if self.path == "/health":
                    cur.execute("SELECT version()")
                    answer = {"ok": True, "database": cur.fetchone()[0]}
                else:
                    cur.execute("SELECT id, body FROM notes ORDER BY id")
                    answer = [{"id": i, "body": b} for i, b in cur.fetchall()]
        except psycopg2.Error as exc:
            return self._send(503, {"ok": False, "error": str(exc).strip()})
        self._send(200, answer)

    def do_POST(self):
        if self.path != "/notes":
            return self._send(404, {"error": "not found"})
        text = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        try:
            with cursor() as cur:
                cur.execute("INSERT INTO notes (body) VALUES (%s) RETURNING id", (text,))
                note = {"id": cur.fetchone()[0], "body": text}
        except psycopg2.Error as exc:
            return self._send(503, {"ok": False, "error": str(exc).strip()})
        self._send(201, note)  # only after the commit: a client that reads next must see the note

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)


def stop(signum, frame):
    sys.exit(0)


if __name__ == "__main__":
    # As its container's PID 1 the app gets no default action for SIGTERM: without a handler every
    # `compose down` waited out its timeout and then killed it.
    signal.signal(signal.SIGTERM, stop)
    setup()
    print("listening on :8080", flush=True)
    ThreadingHTTPServer(("", 8080), Handler).serve_forever()
