"""hub_server.py — a stand-in for the Hugging Face hub and the BEIR download server, for the
download tests (tests/scripts/pull_cli.sh). Python standard library only; not a test itself
(so not executable): run it as `python3 tests/scripts/hub_server.py --port-file F ...`.

It binds 127.0.0.1 on a free port and writes the port to --port-file, then serves:

  /<repo>/resolve/<rev>/<file>   a model directory in the hub's URL layout. rev is "main" or
                                 the commit it reports (X-Repo-Commit). Unknown repository,
                                 revision or file: 404 with the hub's X-Error-Code. Large files
                                 (*.safetensors, *.bin) answer 302 to /cdn/... with the hub's
                                 X-Linked-Size and X-Linked-Etag (SHA-256), as LFS files do.
  /cdn/<repo>/<file>             the large files themselves.
  /datasets/<name>.zip           a zip built at start from a folder (--dataset NAME=DIR),
                                 entries "<name>/...", or one built before with --build-zip
                                 NAME=DIR:OUT and given as --dataset NAME=OUT.

Every file supports Range (206, and 416 past the end). Faults for the tests:
  --drop-once FILE:N   the first response carrying FILE's body stops after N bytes and the
                       connection is closed (FILE is a repo path like model.safetensors, or
                       <name>.zip)
  --lie-size FILE      X-Linked-Size one byte larger than the file
  --corrupt FILE       the CDN serves FILE with one byte changed (its X-Linked-Etag stays right)
  --ignore-range FILE  Range requests for FILE get the whole file (200), as some servers do
  --hide REPO:FILE     FILE is absent from REPO
  --require-token T    resolve requests without "Authorization: Bearer T" get 401
  --cdn-host HOST      host name used in redirects (e.g. localhost: another host than the hub's)
  --evil-dataset NAME  NAME.zip holds an entry "../escape.txt"
Requests are appended to --log as JSON lines {"method","path","range","auth"}.
"""

import argparse
import hashlib
import http.server
import io
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
import zipfile

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".safetensors", ".bin")


class State:
    def __init__(self, args):
        self.repos = {}
        for spec in args.repo:
            rid, d = spec.split("=", 1)
            self.repos[rid] = d
        self.hidden = set(args.hide)
        self.datasets = {}
        for spec in args.dataset:
            name, d = spec.split("=", 1)
            if os.path.isfile(d):  # a zip built earlier with --build-zip
                with open(d, "rb") as f:
                    self.datasets[name] = f.read()
            else:
                self.datasets[name] = build_zip(name, d)
        for name in args.evil_dataset:
            self.datasets[name] = build_evil_zip(name)
        self.drop_once = {}
        for spec in args.drop_once:
            f, n = spec.rsplit(":", 1)
            self.drop_once[f] = int(n)
        self.lie_size = set(args.lie_size)
        self.corrupt = set(args.corrupt)
        self.ignore_range = set(args.ignore_range)
        self.token = args.require_token
        self.cdn_host = args.cdn_host
        self.log_path = args.log
        self.lock = threading.Lock()
        self.cache = {}
        self.last_request = time.monotonic()

    def read(self, path):
        with self.lock:
            st = os.stat(path)
            key = (st.st_mtime_ns, st.st_size)
            if path not in self.cache or self.cache[path][0] != key:
                with open(path, "rb") as f:
                    self.cache[path] = (key, f.read())
            return self.cache[path][1]

    def log(self, entry):
        self.last_request = time.monotonic()
        if self.log_path:
            with self.lock, open(self.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def take_drop(self, key):
        with self.lock:
            return self.drop_once.pop(key, None)


def build_zip(name, folder):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo(name + "/"), b"")
        for root, dirs, files in sorted(os.walk(folder)):
            dirs.sort()
            rel_root = os.path.relpath(root, folder)
            if rel_root != ".":
                z.writestr(zipfile.ZipInfo(name + "/" + rel_root + "/"), b"")
            for fn in sorted(files):
                rel = fn if rel_root == "." else rel_root + "/" + fn
                z.write(os.path.join(root, fn), name + "/" + rel)
    return buf.getvalue()


def build_evil_zip(name):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name + "/corpus.jsonl", b'{"_id": "1", "title": "", "text": "x"}\n')
        z.writestr("../escape.txt", b"escaped\n")
    return buf.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hub-stand-in"

    def log_message(self, fmt, *args):
        pass

    def do_HEAD(self):
        self.handle_request(head=True)

    def do_GET(self):
        self.handle_request(head=False)

    # -- responses --------------------------------------------------------------
    def send_plain(self, status, text, headers=None):
        body = text.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not self.head:
            self.wfile.write(body)

    def hub_error(self, status, code, message):
        self.send_plain(status, message, {"X-Error-Code": code, "X-Error-Message": message})

    def send_data(self, data, key, headers=None):
        """Serve data with Range support and the --drop-once fault (key names the file)."""
        size = len(data)
        start, status = 0, 200
        rng = None if key in self.server.state.ignore_range else self.headers.get("Range")
        if rng:
            spec = rng.strip()
            if not spec.startswith("bytes=") or "," in spec:
                return self.send_plain(400, "bad range")
            a, _, b = spec[6:].partition("-")
            start = int(a)
            end = int(b) if b else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                return
            end = min(end, size - 1)
            data = data[start : end + 1]
            status = 206
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, start + len(data) - 1, size))
        self.end_headers()
        if self.head:
            return
        drop = self.server.state.take_drop(key)
        if drop is not None and drop < len(data):
            self.wfile.write(data[:drop])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(data)

    # -- routing ------------------------------------------------------------------
    def handle_request(self, head):
        self.head = head
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        auth = self.headers.get("Authorization")
        st.log({"method": self.command, "path": path, "range": self.headers.get("Range"),
                "auth": auth})
        if path.startswith("/datasets/") and path.endswith(".zip"):
            name = urllib.parse.unquote(path[len("/datasets/") : -4])
            if name not in st.datasets:
                return self.send_plain(404, "Not Found")
            return self.send_data(st.datasets[name], name + ".zip")
        if path.startswith("/cdn/"):
            repo, _, file = urllib.parse.unquote(path[5:]).partition("/resolve/")
            d = st.repos.get(repo)
            if d is None:
                return self.send_plain(404, "Not Found")
            data = st.read(os.path.join(d, file))
            if file in st.corrupt:
                mid = len(data) // 2
                data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]
            return self.send_data(data, file)
        if "/resolve/" not in path:
            return self.send_plain(404, "Not Found")
        repo, _, rest = path.partition("/resolve/")
        repo = urllib.parse.unquote(repo.lstrip("/"))
        rev, _, file = rest.partition("/")
        rev = urllib.parse.unquote(rev)
        file = urllib.parse.unquote(file)
        if st.token is not None and auth != "Bearer " + st.token:
            return self.send_plain(401, "Invalid credentials in Authorization header",
                                   {"X-Error-Message": "Invalid credentials in Authorization header"})
        d = st.repos.get(repo)
        if d is None:
            return self.hub_error(404, "RepoNotFound", "Repository not found")
        if rev not in ("main", COMMIT):
            return self.hub_error(404, "RevisionNotFound", "Invalid rev id: " + rev)
        full = os.path.normpath(os.path.join(d, file))
        if (repo + ":" + file) in st.hidden or not full.startswith(os.path.normpath(d) + os.sep) \
                or not os.path.isfile(full):
            return self.hub_error(404, "EntryNotFound", "Entry not found")
        common = {"X-Repo-Commit": COMMIT}
        if file.endswith(LFS_SUFFIXES):
            data = st.read(full)
            size = len(data) + (1 if file in st.lie_size else 0)
            host = st.cdn_host or "127.0.0.1"
            loc = "http://%s:%d/cdn/%s/resolve/%s?sig=test" % (
                host, self.server.server_address[1], urllib.parse.quote(repo),
                urllib.parse.quote(file))
            common.update({"Location": loc, "X-Linked-Size": str(size),
                           "X-Linked-Etag": '"%s"' % hashlib.sha256(data).hexdigest(),
                           "ETag": '"%s"' % hashlib.sha256(data).hexdigest()})
            return self.send_plain(302, "Found. Redirecting to " + loc, common)
        data = st.read(full)
        common["ETag"] = '"%s"' % hashlib.sha1(data).hexdigest()
        return self.send_data(data, file, common)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a client hanging up mid-response (the size-mismatch test does) is not an error here
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file")
    ap.add_argument("--build-zip", metavar="NAME=DIR:OUT", help="write the dataset zip and exit")
    ap.add_argument("--repo", action="append", default=[])
    ap.add_argument("--hide", action="append", default=[])
    ap.add_argument("--dataset", action="append", default=[])
    ap.add_argument("--evil-dataset", action="append", default=[])
    ap.add_argument("--drop-once", action="append", default=[])
    ap.add_argument("--lie-size", action="append", default=[])
    ap.add_argument("--corrupt", action="append", default=[])
    ap.add_argument("--ignore-range", action="append", default=[])
    ap.add_argument("--require-token")
    ap.add_argument("--cdn-host")
    ap.add_argument("--log")
    ap.add_argument("--idle-timeout", type=float, default=300)
    args = ap.parse_args()
    if args.build_zip:
        name, rest = args.build_zip.split("=", 1)
        folder, out = rest.rsplit(":", 1)
        with open(out, "wb") as f:
            f.write(build_zip(name, folder))
        return 0
    if not args.port_file:
        ap.error("--port-file is required")

    server = Server(("127.0.0.1", 0), Handler)
    server.state = State(args)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, args.port_file)

    def watchdog():  # never outlive a test that forgot us
        while time.monotonic() - server.state.last_request < args.idle_timeout:
            time.sleep(1)
        server.shutdown()

    threading.Thread(target=watchdog, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
