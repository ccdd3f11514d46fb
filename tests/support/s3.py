"""A real S3 API on 127.0.0.1 (moto's server) for reading shards through s3fs."""

from __future__ import annotations

import boto3
from moto.server import ThreadedMotoServer

ACCESS_KEY = "testing"
SECRET_KEY = "testing"


class LocalS3:
    """Start with `with LocalS3() as s3:`; `s3.storage_options` is what readers pass to fsspec."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> LocalS3:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def storage_options(self) -> dict:
        return {
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"},
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "skip_instance_cache": True,
        }

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)  # no region: moto's default is us-east-1

    def put(self, bucket: str, key: str, data: bytes) -> str:
        """Upload bytes; returns the s3:// URL."""
        self.client().put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"
