"""Wires the components for one stack (the topology), at the stack's provider.

Used by __main__.py, ./podium plan and the tests. Both providers get the same parts from
the same kit data: private network, per-host firewall from the role-to-ports table, servers
with the lab's user-data, data volumes, the provider's load balancer when asked, DNS records
from kit.dns_records, mail reverse DNS, and the offsite bucket at the other company.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from kit import dkim
from kit.dns_records import dkim_from_secrets, records
from kit.firewall import rules_for
from kit.paths import StackPaths
from kit.providers import NETWORK_ZONES, region_of
from kit.stack import Stack


@dataclass
class Platform:
    """What was declared, provider-neutral where callers need it.

    ``servers``: host name -> server resource; ``ipv4``/``ipv6``: host name -> public address
    outputs (IPv6 absent where not provisioned); ``components``: every component, for
    ``resources()``; ``network_id``: the private network's id; ``load_balancer_address``: the
    provider load balancer's private address (None with a proxy host).
    """

    provider: str
    servers: dict[str, pulumi.CustomResource]
    ipv4: dict[str, pulumi.Output]
    ipv6: dict[str, pulumi.Output]
    network_id: pulumi.Output
    components: list[pulumi.ComponentResource]
    offsite_bucket: pulumi.Output | None = None
    # The provider load balancer's private address (load_balancer: provider), else None.
    load_balancer_address: pulumi.Output | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def all_resources(self) -> list[pulumi.CustomResource]:
        """Every custom resource declared under the components (for waiting on them)."""
        found: list[pulumi.CustomResource] = []
        for component in self.components:
            for value in vars(component).values():
                found += _resources_in(value)
        return found


def _resources_in(value: Any) -> list[pulumi.CustomResource]:
    if isinstance(value, pulumi.CustomResource) and not isinstance(value,
                                                                    pulumi.ProviderResource):
        return [value]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _resources_in(v)]
    if isinstance(value, list | tuple):
        return [r for v in value for r in _resources_in(v)]
    return []


def build(stack: Stack) -> Platform:
    if stack.provider == "hcloud":
        return _build_hetzner(stack)
    if stack.provider == "scaleway":
        return _build_scaleway(stack)
    raise ValueError(f"no Pulumi program for provider '{stack.provider}'")


def _offsite(stack: Stack):
    assert stack.offsite is not None  # kit.stack requires it for cloud stacks
    if stack.offsite.provider == "scaleway":
        from scaleway.offsite_bucket import OffsiteBucket, OffsiteBucketArgs
    else:
        from hetzner.offsite_bucket import OffsiteBucket, OffsiteBucketArgs
    return OffsiteBucket("offsite-backups", OffsiteBucketArgs(
        stack_name=stack.name, region=stack.offsite.region))


def _build_hetzner(stack: Stack) -> Platform:
    from hetzner.dns import Zone, ZoneArgs
    from hetzner.firewall import HostFirewall, HostFirewallArgs
    from hetzner.load_balancer import AppLoadBalancer, AppLoadBalancerArgs
    from hetzner.network import PrivateNetwork, PrivateNetworkArgs
    from hetzner.reverse_dns import MailReverseDns, MailReverseDnsArgs
    from hetzner.servers import Servers, ServersArgs, labels_for
    from hetzner.volumes import DataVolumes, DataVolumesArgs

    zones = {NETWORK_ZONES[h.location] for h in stack.hosts if h.location}
    network = PrivateNetwork("private", PrivateNetworkArgs(
        cidr=stack.network.cidr, network_zone=sorted(zones)[0], labels=labels_for(stack)))
    firewalls = {
        host.name: HostFirewall(f"{host.name}-fw", HostFirewallArgs(
            rules=rules_for(stack, host), labels=labels_for(stack, host)))
        for host in stack.hosts
    }
    servers = Servers("servers", ServersArgs(
        stack=stack, network=network.network, subnet=network.subnet,
        firewalls={name: fw.firewall for name, fw in firewalls.items()}))
    volumes = DataVolumes("volumes", DataVolumesArgs(stack=stack, servers=servers.servers))
    components: list[pulumi.ComponentResource] = [network, *firewalls.values(), servers,
                                                  volumes]
    components += [
        MailReverseDns(f"{host.name}-rdns", MailReverseDnsArgs(
            server=servers.servers[host.name], fqdn=f"{host.name}.{stack.domain}"))
        for host in stack.hosts if "mail" in host.roles
    ]
    lb_address = None
    if stack.load_balancer == "provider":
        apps = [h for h in stack.hosts if "app" in h.roles]
        balancer = AppLoadBalancer("app-lb", AppLoadBalancerArgs(
            location=apps[0].location or "", network=network.network, subnet=network.subnet,
            app_servers=[servers.servers[h.name] for h in apps], labels=labels_for(stack),
            private_address=stack.load_balancer_address))
        components.append(balancer)
        lb_address = balancer.private_address
    ipv4 = {n: s.ipv4_address for n, s in servers.servers.items()}
    ipv6 = {n: s.ipv6_address for n, s in servers.servers.items()}
    components.append(Zone("zone", ZoneArgs(domain=stack.domain,
                                            records=records(stack, ipv4, ipv6, _dkim(stack)),
                                            labels=labels_for(stack))))
    offsite = _offsite(stack)
    components.append(offsite)
    return Platform("hcloud", dict(servers.servers), ipv4, ipv6, network.network.id,
                    components, offsite_bucket=offsite.bucket_name,
                    load_balancer_address=lb_address)


def _build_scaleway(stack: Stack) -> Platform:
    from scaleway.dns import Records, RecordsArgs
    from scaleway.load_balancer import AppLoadBalancer, AppLoadBalancerArgs
    from scaleway.network import PrivateNetwork, PrivateNetworkArgs
    from scaleway.reverse_dns import MailReverseDns, MailReverseDnsArgs
    from scaleway.security_group import HostSecurityGroup, HostSecurityGroupArgs
    from scaleway.servers import Servers, ServersArgs
    from scaleway.tags import tags_for
    from scaleway.volumes import DataVolumes, DataVolumesArgs

    region = region_of(stack.hosts[0].location or "")
    network = PrivateNetwork("private", PrivateNetworkArgs(stack=stack, region=region,
                                                           tags=tags_for(stack)))
    groups = {
        host.name: HostSecurityGroup(f"{host.name}-fw", HostSecurityGroupArgs(
            zone=host.location or "", rules=rules_for(stack, host),
            tags=tags_for(stack, host)))
        for host in stack.hosts
    }
    volumes = DataVolumes("volumes", DataVolumesArgs(stack=stack))
    servers = Servers("servers", ServersArgs(
        stack=stack, private_network=network.network, addresses=network.addresses,
        security_groups={name: g.group for name, g in groups.items()},
        volumes=volumes.volumes))
    components: list[pulumi.ComponentResource] = [network, *groups.values(), volumes, servers]
    lb_address = None
    if stack.load_balancer == "provider":
        apps = [h for h in stack.hosts if "app" in h.roles]
        balancer = AppLoadBalancer("app-lb", AppLoadBalancerArgs(
            zone=apps[0].location or "", private_network=network.network,
            app_addresses=[str(h.address) for h in apps], tags=tags_for(stack), region=region,
            private_address=stack.load_balancer_address))
        components.append(balancer)
        lb_address = balancer.private_address
    # IPv4 only for now: routed IPv6 at Scaleway is a /64 prefix per server, and which
    # address of it the host answers on is the host's choice (not modelled yet).
    ipv4 = {name: ip.address for name, ip in servers.public_ipv4.items()}
    dns = Records("zone", RecordsArgs(domain=stack.domain,
                                      records=records(stack, ipv4, {}, _dkim(stack))))
    components.append(dns)
    components += [
        MailReverseDns(f"{host.name}-rdns", MailReverseDnsArgs(
            ip=servers.public_ipv4[host.name], zone=host.location or "",
            fqdn=f"{host.name}.{stack.domain}",
            forward_records=dns.by_name[(host.name, "A")]))
        for host in stack.hosts if "mail" in host.roles
    ]
    offsite = _offsite(stack)
    components.append(offsite)
    return Platform("scaleway", dict(servers.servers), ipv4, {}, network.network.id,
                    components, offsite_bucket=offsite.bucket_name,
                    load_balancer_address=lb_address)


def _dkim(stack: Stack):
    """The DKIM keys the mail role signs with (made by `./podium up` before `pulumi up`)."""
    if not any("mail" in h.roles for h in stack.hosts):
        return ()
    return dkim_from_secrets(StackPaths(stack.name).secrets, dkim.selectors())
