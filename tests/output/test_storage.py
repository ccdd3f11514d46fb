"""Storage faults: transient object-store errors are retried before a write fails; permanent ones are not."""

from __future__ import annotations

import http.client
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import fsspec
import pytest

from pipeline.output.layout import OutputLayout
from pipeline.output.records import CommitRecord
from pipeline.output.shard_writer import publish_shard
from pipeline.output.storage import create_exclusively, write_json


class FlakyProxy:
    """An HTTP proxy in front of the S3 server that answers the first ``failures`` PUTs whose path
    contains ``match`` with ``status`` (an S3 error document) instead of forwarding them."""

    def __init__(self, upstream: str, match: str, failures: int, status: int = 500, code: str = "InternalError"):
        self.upstream = urlparse(upstream)
        self.match, self.left, self.status, self.code = match, failures, status, code
        self.failed: list[str] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers botocore's "Expect: 100-continue"

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    fail = self.command == "PUT" and proxy.match in self.path and proxy.left > 0
                    if fail:
                        proxy.left -= 1
                        proxy.failed.append(self.path)
                if fail:
                    payload = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{proxy.code}</Code>"
                               f"<Message>injected by the test</Message></Error>").encode()
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "expect")}
                headers["Host"] = proxy.upstream.netloc
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky(local_s3):
    bucket = f"flaky-{uuid.uuid4().hex[:8]}"
    local_s3.create_bucket(bucket)
    proxies = []

    def make(match: str, failures: int, **kwargs) -> tuple[OutputLayout, FlakyProxy]:
        proxy = FlakyProxy(local_s3.endpoint_url, match, failures, **kwargs)
        proxies.append(proxy)
        options = {**local_s3.storage_options,
                   "client_kwargs": {**local_s3.storage_options["client_kwargs"], "endpoint_url": proxy.url},
                   "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}}}  # botocore: no retries
        return OutputLayout(f"s3://{bucket}/out", options), proxy

    yield make
    for proxy in proxies:
        proxy.close()


def test_transient_errors_while_publishing_are_retried_and_the_shard_commits(flaky):
    layout, proxy = flaky("/out/latents/", failures=2)
    committed = publish_shard(layout, CommitRecord("part-000000", run_id="r"), [], [], {"model": "m"})
    assert len(proxy.failed) == 2 and committed.rows == 0
    fs = fsspec.filesystem("s3", **{k: v for k, v in layout.storage_options.items()})
    fs.invalidate_cache()
    assert fs.exists(f"{layout.root}/_committed/part-000000.json") and fs.exists(layout.latents("part-000000"))


def test_a_transient_error_on_the_exclusive_create_is_retried(flaky):
    layout, proxy = flaky("/out/_job.json", failures=1, status=503, code="ServiceUnavailable")
    assert create_exclusively(layout.fs, layout.job_manifest, b"{}") is True
    assert len(proxy.failed) == 1
    assert create_exclusively(layout.fs, layout.job_manifest, b"{}") is False


def test_permanent_errors_are_not_retried(flaky):
    layout, proxy = flaky("/out/_summary.json", failures=5, status=403, code="AccessDenied")
    with pytest.raises(PermissionError):
        write_json(layout.fs, layout.summary, {"a": 1})
    assert len(proxy.failed) == 1
