"""The `s3://bucket/prefix` backend: one store over two ways of sending a request.

`store.S3Remote` is the backend (an `ObjectStore`). Each of its requests takes one of two
paths, decided per request, never per run:

The fast path (`fast.FastTransport`): our own SigV4 signer (`sigv4`) over a plain
urllib3 pool, or over `plainhttp` (recv into the restore's buffers, splice into files)
for `http://` endpoints reached without a proxy. It sends
  - GETs of whole objects and ranged GETs, HEADs of objects and of the bucket, and
    ListObjectsV2 pages: always. They are presigned by `sigv4` when it knows the
    bucket's base URL, else by botocore's presigner, and sent by us either way;
  - single PUTs (every object below the multipart threshold, so nearly all of a
    small-file backup), DELETEs, and verify's HEADs with `x-amz-checksum-mode` or
    `partNumber`: when `sigv4` knows the base URL (`FastTransport.fast_signer()`), with
    the headers botocore would send (tags, ACL, storage class, SSE-KMS, metadata,
    the checksum, `If-None-Match`).
Why: botocore's request pipeline, endpoint rules and response parser cost about 1.2 ms
of CPU per GET and its signer re-derives its key each time; a restore or a small-file
backup makes thousands of these requests.

botocore (`boto`: its client, made on the first request that needs it) sends
  - multipart uploads (create, each part, complete, abort) and server-side copies:
    few, large requests where its per-request cost does not show;
  - deletes with --delete-all-object-versions (ListObjectVersions, then a DELETE of
    each version by its id): rare, and its paginator parses the version listing;
  - the single PUTs, DELETEs and checksum HEADs above when `sigv4` does not know the
    base URL (a virtual-host custom endpoint, a URL shape the probe does not
    recognise), and single PUTs with `--s3-checksum-algorithm CRC64NVME`, which only
    botocore computes.

Which signs the fast path depends on the credentials. Static keys (`static_creds`:
the environment, or a profile holding only keys and a region, read in botocore's
precedence) give the keys, region and base URL without botocore, which is then never
imported by a restore, a verify or a backup that writes only single PUTs. Any other
credentials (roles, SSO, web identity, credential processes, endpoint settings in the
environment or the profile) are resolved by botocore, its client made up front; one
presigned probe GET then tells `fast` the base URL and signing region, and each fast
request is signed by `sigv4` with botocore's current (refreshed) keys.

Forward proxies (`proxy`) are chosen as botocore chooses them, so both paths of a run
take the same route. Nothing here retries: every request is one attempt, and retry.py
decides (see _cloud.ObjectStore). tests/remotes/test_s3_signatures.py holds `sigv4`'s
output to botocore's signers, request by request.
"""

from .store import S3Remote

__all__ = ["S3Remote"]
