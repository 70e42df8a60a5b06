"""Podium's Pulumi program: turns infra/stacks/Pulumi.<stack>.yaml into servers.

Run on the operator's machine (the Pulumi CLI is not needed for the tests, which use
pulumi.runtime.set_mocks):  pulumi up --stack hetzner
"""

import config  # first: puts the repository on sys.path for the kit
import pulumi
from topology import build

stack = config.load()
platform = build(stack)

pulumi.export("servers", {
    name: {
        "ipv4": server.ipv4_address,
        "ipv6": server.ipv6_address,
        "private": str(stack.host(name).address),
        "roles": list(stack.host(name).roles),
    }
    for name, server in platform.servers.servers.items()
})
pulumi.export("network_id", platform.network.network.id)
if platform.offsite is not None:
    pulumi.export("offsite_bucket", platform.offsite.bucket.name)
