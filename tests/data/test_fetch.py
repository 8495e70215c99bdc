"""Download: resumes a partial file, verifies the sha256, refuses a mismatch."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest

from flowsim.data.fetch import ChecksumError, DownloadError, download, sha256_file

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with HTTP Range support and records the ranges asked for."""

    ranges: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.endswith("/missing"):
            self.send_error(404)
            return
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        if start >= len(PAYLOAD):
            self.send_response(416)
            self.end_headers()
            return
        body = PAYLOAD[start:]
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/HIGGS.csv.gz"
    httpd.shutdown()


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_verifies_and_renames(tmp_path, server):
    target = download(server, tmp_path / "HIGGS.csv.gz", sha256=SHA)
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "HIGGS.csv.gz.part").exists()
    assert sha256_file(target) == SHA


def test_download_resumes_a_partial_file(tmp_path, server):
    (tmp_path / "HIGGS.csv.gz.part").write_bytes(PAYLOAD[:300_000])
    target = download(server, tmp_path / "HIGGS.csv.gz", sha256=SHA)
    assert target.read_bytes() == PAYLOAD
    assert _RangeHandler.ranges == ["bytes=300000-"]


def test_complete_partial_file_is_only_verified(tmp_path, server):
    (tmp_path / "HIGGS.csv.gz.part").write_bytes(PAYLOAD)
    assert download(server, tmp_path / "HIGGS.csv.gz", sha256=SHA).read_bytes() == PAYLOAD


def test_checksum_mismatch_is_refused_and_nothing_kept(tmp_path, server):
    with pytest.raises(ChecksumError, match=f"is {SHA}, expected 0{{64}}: refusing"):
        download(server, tmp_path / "HIGGS.csv.gz", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_download_names_the_url_and_the_way_around(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/HIGGS.csv.gz"
    with pytest.raises(DownloadError, match=f"cannot download {url}: .*source: path") as info:
        download(url, tmp_path / "HIGGS.csv.gz", sha256=SHA, timeout=5)
    assert "Traceback" not in str(info.value)
    assert not (tmp_path / "HIGGS.csv.gz").exists()


def test_http_error_names_the_url(tmp_path, server):
    url = server.replace("HIGGS.csv.gz", "missing")
    with pytest.raises(DownloadError, match=f"cannot download {url}: HTTP 404"):
        download(url, tmp_path / "HIGGS.csv.gz", sha256=SHA)
