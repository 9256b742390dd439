"""A loopback HTTP server that answers the Hugging Face Hub's file-resolve endpoint for fake repos.

/{org}/{name}/resolve/{revision}/{filename}   HEAD and GET, with the headers huggingface_hub reads
(X-Repo-Commit, ETag, Content-Length); anything else is a 404 with the Hub's error header.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self):
        self.files: dict[tuple[str, str, str], bytes] = {}  # (repo, revision, filename) -> bytes
        self.commits: dict[tuple[str, str], str] = {}
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _lookup(self):
                hub.requests.append(f"{self.command} {self.path}")
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None, None
                repo, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                commit = hub.commits.get((repo, revision), revision)
                return hub.files.get((repo, commit, filename)), commit

            def _answer(self, body: bool):
                data, commit = self._lookup()
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Error-Message", "Entry not found")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._answer(False)

            def do_GET(self):
                self._answer(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo: str, commit: str, filename: str, data: bytes, branch: str = "main") -> None:
        self.files[(repo, commit, filename)] = data
        self.commits[(repo, branch)] = commit

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
