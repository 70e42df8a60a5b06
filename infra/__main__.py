"""Podium's Pulumi program: turns infra/stacks/Pulumi.<stack>.yaml into servers.

Run on the operator's machine, usually through ./podium up --stack NAME (the Pulumi CLI is
not needed for the tests, which use pulumi.runtime.set_mocks):  pulumi up --stack hetzner
"""

import config  # first: puts the repository on sys.path for the kit
import pulumi
from topology import build

stack = config.load()
platform = build(stack)

# kit.inventory.public_addresses_from_outputs reads this shape.
pulumi.export("servers", {
    name: {
        "ipv4": platform.ipv4[name],
        "ipv6": platform.ipv6.get(name),
        "private": str(stack.host(name).address),
        "roles": list(stack.host(name).roles),
    }
    for name in platform.servers
})
pulumi.export("provider", stack.provider)
pulumi.export("network_id", platform.network_id)
if platform.load_balancer_address is not None:
    # Where the edges send requests: the provider load balancer's private address
    # (kit.inventory.load_balancer_address_from_outputs reads it into the inventory).
    pulumi.export("load_balancer_address", platform.load_balancer_address)
if platform.offsite_bucket is not None:
    pulumi.export("offsite_bucket", platform.offsite_bucket)
