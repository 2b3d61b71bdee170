"""--s3-checksum-algorithm CRC32C on botocore's path (see remotes/s3/__init__.py): multipart
uploads, and single PUTs where the fast signer does not know the URL shape. botocore
computes a CRC32C only with awscrt, which is not installed: we compute it and botocore
sends it as given."""

from __future__ import annotations

import base64

import pytest

from snapferry.crc32c_ext import crc32c
from snapferry.remotes import open_remote
from snapferry.remotes.s3 import S3Remote
from tests.remotes.test_contract import BytesBody, part_of
from tests.servers import S3Server

MiB = 1024 * 1024


@pytest.mark.parametrize("server", ["seaweedfs", "moto_server"])
def test_multipart_upload_with_crc32c(server: str, request: pytest.FixtureRequest) -> None:
    srv: S3Server = request.getfixturevalue(server)
    url, opts = srv.new_remote()
    opts.s3_checksum_algorithm = "CRC32C"
    opts.multipart_chunk_size = 5 * MiB
    r = open_remote(url, opts)
    data = bytes(range(256)) * (11 * MiB // 256)  # three chunks: 5, 5 and 1 MiB
    part = part_of("big/crc32c.bin", len(data))
    r.upload_part(part, BytesBody(data))
    bucket = url.split("/")[2]
    key = f"{url.split('/', 3)[3]}/{part.name}"
    assert srv.raw_get(bucket, key) == data
    if server == "moto_server":  # SeaweedFS keeps no checksum; moto keeps S3's composite one
        # The CRC32C of the chunks' CRC32Cs: each chunk carried its own (moto leaves out
        # the "-3" S3 appends).
        chunks = [data[i:i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
        composite = crc32c(b"".join(crc32c(c).to_bytes(4, "big") for c in chunks)).to_bytes(4, "big")
        head = srv.client().head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert str(head.get("ChecksumCRC32C", "")).split("-")[0] == base64.b64encode(composite).decode(), head
    r.close()


@pytest.mark.parametrize("server", ["seaweedfs", "moto_server"])
def test_single_put_on_botocores_path_with_crc32c(server: str, request: pytest.FixtureRequest) -> None:
    srv: S3Server = request.getfixturevalue(server)
    url, opts = srv.new_remote()
    opts.s3_checksum_algorithm = "CRC32C"
    r = open_remote(url, opts)
    assert isinstance(r, S3Remote)
    r.gets.signer, r.gets._probed = None, True  # as for a URL shape the fast signer does not know
    sent: list[dict[str, str]] = []
    r._client.meta.events.register("before-send.s3.PutObject", lambda request, **kw: sent.append(request.headers))
    data = b"crc32c " * 1000
    part = part_of("small/crc32c.bin", len(data))
    r.upload_part(part, BytesBody(data))
    assert srv.raw_get(url.split("/")[2], f"{url.split('/', 3)[3]}/{part.name}") == data
    assert len(sent) == 1  # botocore's put_object sent it, with our CRC32C
    want = base64.b64encode(crc32c(data).to_bytes(4, "big")).decode()
    assert sent[0]["x-amz-checksum-crc32c"] in (want, want.encode())  # botocore keeps some header values as bytes
    r.close()
