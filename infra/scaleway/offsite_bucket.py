"""Offsite backup bucket at Scaleway Object Storage, for stacks whose servers run at Hetzner.

If the platform's provider drops the account, the backups are still at another company in
another jurisdiction's reach, and the platform can be rebuilt from them (the backup issue's
pgBackRest repository and media copies write here).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumiverse_scaleway as scaleway
import pulumiverse_scaleway.object as scaleway_object
from credentials import credential

# Old versions of overwritten or deleted objects are kept this long: a ransomware-style
# overwrite or a mistaken delete can be undone within the window.
NONCURRENT_DAYS = 30


@dataclass
class OffsiteBucketArgs:
    stack_name: str
    region: str


class OffsiteBucket(pulumi.ComponentResource):
    def __init__(self, name: str, args: OffsiteBucketArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:scaleway:OffsiteBucket", name, None, opts)
        # An explicit provider does not read the stack's scaleway:* config by itself.
        self.provider = scaleway.Provider(
            f"{name}-scaleway", region=args.region,
            access_key=credential("scaleway", "accessKey", "SCW_ACCESS_KEY"),
            secret_key=credential("scaleway", "secretKey", "SCW_SECRET_KEY"),
            opts=pulumi.ResourceOptions(parent=self))
        # scaleway.object.Bucket replaces the deprecated scaleway.ObjectBucket; its argument
        # classes are not exported, so the inputs are given in their documented dict form.
        self.bucket = scaleway_object.Bucket(
            name,
            name=f"podium-{args.stack_name}-backups",
            region=args.region,
            versioning={"enabled": True},
            lifecycle_rules=[{
                "enabled": True,
                "abort_incomplete_multipart_upload_days": 7,
                "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_DAYS},
            }],
            tags={"podium-stack": args.stack_name, "purpose": "backups"},
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider,
                                        protect=True),
        )
        self.bucket_name = self.bucket.name
        self.register_outputs({"bucket": self.bucket_name})
