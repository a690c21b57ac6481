"""MessageArchive (mxflow.ports) on the S3 archive bucket (template.yaml `ArchiveBucket`): the raw
received messages and every generated message, SSE-KMS encrypted."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from botocore.exceptions import ClientError

from mxflow.aws.clients import AwsAdapter, aws_client, error_code, service_errors
from mxflow.errors import MessageNotFound


@dataclass
class S3MessageArchive(AwsAdapter):
    service: ClassVar[str] = "s3"
    bucket: str
    kms_key_id: str | None = None  # None: the bucket's default SSE-KMS key
    # Two Regions (docs/regions.md): the peer Region's archive, read when an object is not here yet (a
    # payment taken over before S3 replication brought its received message over).
    fallback_bucket: str | None = None
    fallback_region: str | None = None

    @service_errors
    def put(self, key: str, data: bytes, *, content_type: str = "application/xml",
            metadata: dict | None = None) -> str:
        """Store `data` under `key`. With a KMS key id (ARCHIVE_KMS_KEY_ID) the request names it
        (SSE-KMS, S3 Bucket Key); without one no encryption header is sent, so the bucket's default
        SSE-KMS key applies (a bare `aws:kms` header would select the AWS-managed aws/s3 key)."""
        kwargs = {"Bucket": self.bucket, "Key": key, "Body": data, "ContentType": content_type,
                  "ChecksumAlgorithm": "SHA256"}
        if metadata:
            kwargs["Metadata"] = {k: str(v) for k, v in metadata.items()}
        if self.kms_key_id:
            kwargs.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_id,
                          BucketKeyEnabled=True)
        self.client.put_object(**kwargs)
        return key

    @service_errors
    def get(self, key: str) -> bytes:
        return self._get_object(key, {})

    @service_errors
    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes start..end-1 (an HTTP Range request: one GET, whatever the object's size)."""
        if end <= start:
            return b""
        return self._get_object(key, {"Range": f"bytes={start}-{end - 1}"})

    def _get_object(self, key: str, extra: dict) -> bytes:
        """The object (or its range) here, else in the peer Region's archive (fallback_bucket)."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()
        except ClientError as error:
            if error_code(error) not in ("NoSuchKey", "404", "NotFound"):
                raise
        if self.fallback_bucket:
            try:
                return aws_client("s3", self.fallback_region).get_object(Bucket=self.fallback_bucket,
                                                                        Key=key, **extra)["Body"].read()
            except ClientError as error:
                if error_code(error) not in ("NoSuchKey", "404", "NotFound", "NoSuchBucket"):
                    raise
        raise MessageNotFound(f"archived message {key} not found")

    @service_errors
    def list_keys(self, prefix: str, *, start_after: str | None = None):
        """Every key under `prefix`, in order (ListObjectsV2, 1,000 per page)."""
        kwargs = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after:
            kwargs["StartAfter"] = start_after
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            for item in page.get("Contents", []):
                yield item["Key"]

    @service_errors
    def metadata(self, key: str) -> dict:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key).get("Metadata") or {})
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404", "NotFound"):
                raise MessageNotFound(f"archived object {key} not found") from None
            raise
