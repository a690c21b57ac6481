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
    def put(self, key: str, data: bytes) -> str:
        """Store `data` under `key`. With a KMS key id (ARCHIVE_KMS_KEY_ID) the request names it
        (SSE-KMS, S3 Bucket Key); without one no encryption header is sent, so the bucket's default
        SSE-KMS key applies (a bare `aws:kms` header would select the AWS-managed aws/s3 key)."""
        kwargs = {"Bucket": self.bucket, "Key": key, "Body": data, "ContentType": "application/xml",
                  "ChecksumAlgorithm": "SHA256"}
        if self.kms_key_id:
            kwargs.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_id,
                          BucketKeyEnabled=True)
        self.client.put_object(**kwargs)
        return key

    @service_errors
    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) not in ("NoSuchKey", "404", "NotFound"):
                raise
        if self.fallback_bucket:
            try:
                return aws_client("s3", self.fallback_region).get_object(Bucket=self.fallback_bucket,
                                                                        Key=key)["Body"].read()
            except ClientError as error:
                if error_code(error) not in ("NoSuchKey", "404", "NotFound", "NoSuchBucket"):
                    raise
        raise MessageNotFound(f"archived message {key} not found")
