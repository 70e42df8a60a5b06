"""Scaleway's load balancer in front of the app hosts, where the stack asks for it
(podium:load_balancer: provider) instead of HAProxy on a proxy host.

It has no public address (assign_flexible_ip false): the edges reach it over the private
network, and it reaches the app hosts at their private addresses, checking /readyz on each.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumiverse_scaleway.ipam as ipam
import pulumiverse_scaleway.loadbalancers as lb
import pulumiverse_scaleway.network as network

from kit.providers import LOAD_BALANCER_TYPE
from kit.stack import role_ports

# From the role-to-ports table, as for Hetzner: it listens where the proxy role would.
APP_PORT = role_ports()["app"][0]["port"]
LISTEN_PORT = role_ports()["proxy"][0]["port"]


@dataclass
class AppLoadBalancerArgs:
    zone: str
    private_network: network.PrivateNetwork
    app_addresses: list[str]
    tags: list[str]
    region: str
    private_address: str


class AppLoadBalancer(pulumi.ComponentResource):
    def __init__(self, name: str, args: AppLoadBalancerArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("podium:scaleway:AppLoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.address = ipam.Ip(
            f"{name}-private", address=args.private_address, region=args.region,
            sources=[{"private_network_id": args.private_network.id}], tags=args.tags,
            opts=child)
        self.load_balancer = lb.LoadBalancer(
            name, name=name, type=LOAD_BALANCER_TYPE["scaleway"], zone=args.zone,
            assign_flexible_ip=False,
            private_networks=[{"private_network_id": args.private_network.id,
                               "ipam_ids": self.address.id}],
            tags=args.tags, opts=child)
        # Where the edges send requests (exported as load_balancer_address, read into the
        # inventory by kit.inventory, used by the edge role's upstreams).
        self.private_address: pulumi.Output[str] = self.address.address
        self.backend = lb.Backend(
            f"{name}-app", name="app", lb_id=self.load_balancer.id, forward_protocol="tcp",
            forward_port=APP_PORT, forward_port_algorithm="leastconn",
            server_ips=list(args.app_addresses),
            health_check_port=APP_PORT, health_check_delay="10s", health_check_timeout="5s",
            health_check_max_retries=3,
            health_check_http={"uri": "/readyz", "method": "GET", "code": 200},
            opts=child)
        self.frontend = lb.Frontend(
            f"{name}-listen", name="listen", lb_id=self.load_balancer.id,
            backend_id=self.backend.id, inbound_port=LISTEN_PORT, opts=child)
        self.register_outputs({"load_balancer_id": self.load_balancer.id,
                               "private_address": self.private_address})
