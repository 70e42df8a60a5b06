"""The provider's load balancer in front of the app hosts, where the stack asks for it
(podium:load_balancer: provider) instead of HAProxy on a proxy host.

It has no public interface: the edges reach it over the private network, and it reaches the
app hosts there too, checking /readyz on each.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_hcloud as hcloud

from kit.stack import role_ports

# From the role-to-ports table, so the load balancer and the host firewalls agree: it listens
# where the proxy role would (edges talk to either the same way) and sends to the app port.
APP_PORT = role_ports()["app"][0]["port"]
LISTEN_PORT = role_ports()["proxy"][0]["port"]


@dataclass
class AppLoadBalancerArgs:
    location: str
    network: hcloud.Network
    subnet: hcloud.NetworkSubnet
    app_servers: list[hcloud.Server]
    labels: dict[str, str]
    private_address: str


class AppLoadBalancer(pulumi.ComponentResource):
    def __init__(self, name: str, args: AppLoadBalancerArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:hetzner:AppLoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.load_balancer = hcloud.LoadBalancer(
            name, load_balancer_type="lb11", location=args.location, labels=args.labels,
            algorithm=hcloud.LoadBalancerAlgorithmArgs(type="least_connections"), opts=child)
        lb_id = self.load_balancer.id.apply(int)
        self.attachment = hcloud.LoadBalancerNetwork(
            f"{name}-private", load_balancer_id=lb_id, network_id=args.network.id.apply(int),
            ip=args.private_address, enable_public_interface=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.subnet]))
        # Where the edges send requests (exported as load_balancer_address, read into the
        # inventory by kit.inventory, used by the edge role's upstreams).
        self.private_address: pulumi.Output[str] = self.attachment.ip
        self.service = hcloud.LoadBalancerService(
            f"{name}-app", load_balancer_id=lb_id, protocol="tcp", listen_port=LISTEN_PORT,
            destination_port=APP_PORT,
            health_check=hcloud.LoadBalancerServiceHealthCheckArgs(
                protocol="http", port=APP_PORT, interval=10, timeout=5, retries=3,
                http=hcloud.LoadBalancerServiceHealthCheckHttpArgs(path="/readyz",
                                                                   status_codes=["200"])),
            opts=child)
        self.targets = [
            hcloud.LoadBalancerTarget(
                f"{name}-target-{index}", load_balancer_id=lb_id, type="server",
                server_id=server.id.apply(int), use_private_ip=True,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.attachment]))
            for index, server in enumerate(args.app_servers)
        ]
        self.register_outputs({"load_balancer_id": self.load_balancer.id,
                               "private_address": self.private_address})
