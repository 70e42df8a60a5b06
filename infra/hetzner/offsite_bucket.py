"""Offsite backup bucket at Hetzner Object Storage, for stacks whose servers run at Scaleway.

pulumi-hcloud has no object storage resource (pulumi/pulumi-hcloud#850; Hetzner's answer in
hetznercloud/terraform-provider-hcloud#1005 is to use the MinIO provider against its S3
endpoint), so the bucket is declared with pulumi-minio at <region>.your-objectstorage.com.
Credentials are Hetzner S3 keys (Cloud Console, Security, S3 credentials): MINIO_USER and
MINIO_PASSWORD in the environment, or `pulumi config set --secret minio:minioUser/...`.
Versioning and the noncurrent-version rule use the plain S3 API calls Hetzner documents;
they are checked here under mocks only.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_minio as minio
from credentials import credential

from kit.providers import HETZNER_S3_ENDPOINT

# Old versions of overwritten or deleted objects are kept this long (same as at Scaleway).
NONCURRENT_DAYS = 30


@dataclass
class OffsiteBucketArgs:
    stack_name: str
    region: str


class OffsiteBucket(pulumi.ComponentResource):
    def __init__(self, name: str, args: OffsiteBucketArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:hetzner:OffsiteBucket", name, None, opts)
        self.provider = minio.Provider(
            f"{name}-hetzner-s3", minio_server=HETZNER_S3_ENDPOINT.format(region=args.region),
            minio_region=args.region, minio_ssl=True,
            minio_user=credential("minio", "minioUser", "MINIO_USER"),
            minio_password=credential("minio", "minioPassword", "MINIO_PASSWORD"),
            opts=pulumi.ResourceOptions(parent=self))
        on_hetzner = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self.bucket = minio.S3Bucket(
            name, bucket=f"podium-{args.stack_name}-backups", acl="private",
            opts=pulumi.ResourceOptions.merge(on_hetzner,
                                              pulumi.ResourceOptions(protect=True)))
        self.versioning = minio.S3BucketVersioning(
            f"{name}-versioning", bucket=self.bucket.bucket,
            versioning_configuration={"status": "Enabled"}, opts=on_hetzner)
        self.lifecycle = minio.IlmPolicy(
            f"{name}-lifecycle", bucket=self.bucket.bucket,
            rules=[{"id": "expire-old-versions", "status": "Enabled",
                    "noncurrent_version_expiration_days": NONCURRENT_DAYS}],
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider,
                                        depends_on=[self.versioning]))
        self.bucket_name = self.bucket.bucket
        self.register_outputs({"bucket": self.bucket_name})
