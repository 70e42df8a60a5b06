"""Wires the components for one stack (the topology). Used by __main__.py and the tests."""

from __future__ import annotations

from dataclasses import dataclass

from dns import Zone, ZoneArgs
from firewall import HostFirewall, HostFirewallArgs
from load_balancer import AppLoadBalancer, AppLoadBalancerArgs
from network import PrivateNetwork, PrivateNetworkArgs
from offsite import OffsiteBucket, OffsiteBucketArgs
from reverse_dns import MailReverseDns, MailReverseDnsArgs
from servers import Servers, ServersArgs, labels_for
from volumes import DataVolumes, DataVolumesArgs

from kit.dns_records import records
from kit.firewall import rules_for
from kit.providers import NETWORK_ZONES
from kit.stack import Stack


@dataclass
class Platform:
    network: PrivateNetwork
    firewalls: dict[str, HostFirewall]
    servers: Servers
    volumes: DataVolumes
    mail_rdns: list[MailReverseDns]
    load_balancer: AppLoadBalancer | None
    zone: Zone
    offsite: OffsiteBucket | None

    def all_resources(self) -> list:
        return [self.network.network, self.network.subnet,
                *(f.firewall for f in self.firewalls.values()),
                *self.servers.servers.values(), *self.servers.placement_groups,
                *self.servers.ssh_keys, *self.volumes.volumes.values(),
                *(r for rdns in self.mail_rdns for r in (rdns.ipv4, rdns.ipv6)),
                *([self.load_balancer.load_balancer, self.load_balancer.service,
                   *self.load_balancer.targets] if self.load_balancer else []),
                self.zone.zone, *self.zone.rrsets,
                *([self.offsite.bucket] if self.offsite else [])]


def build(stack: Stack) -> Platform:
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
    mail_rdns = [
        MailReverseDns(f"{host.name}-rdns", MailReverseDnsArgs(
            server=servers.servers[host.name], fqdn=f"{host.name}.{stack.domain}"))
        for host in stack.hosts if "mail" in host.roles
    ]
    load_balancer = None
    if stack.load_balancer == "provider":
        apps = [h for h in stack.hosts if "app" in h.roles]
        load_balancer = AppLoadBalancer("app-lb", AppLoadBalancerArgs(
            location=apps[0].location or "", network=network.network, subnet=network.subnet,
            app_servers=[servers.servers[h.name] for h in apps], labels=labels_for(stack)))
    zone = Zone("zone", ZoneArgs(
        domain=stack.domain,
        records=records(stack,
                        {n: s.ipv4_address for n, s in servers.servers.items()},
                        {n: s.ipv6_address for n, s in servers.servers.items()}),
        labels=labels_for(stack)))
    offsite = None
    if stack.offsite is not None:
        offsite = OffsiteBucket("offsite-backups", OffsiteBucketArgs(
            stack_name=stack.name, region=stack.offsite.region))
    return Platform(network, firewalls, servers, volumes, mail_rdns, load_balancer, zone,
                    offsite)


