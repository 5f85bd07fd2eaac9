/**
 * doctor's look at the way in from the internet (issue: "Seeing it"): how the router maps UDP
 * (from two STUN answers, RFC 5780 §4.3), whether it forwards ports on request (NAT-PMP / UPnP),
 * and IPv6 — each as one line that says what it means for reaching the group.
 */
import { isIPv4 } from "../../protocol/candidate.ts";
import { isGlobalIPv6, systemInterfaces, usableAddresses } from "../../net/interfaces.ts";
import { PortMapper } from "../../net/portmap.ts";
import {
  DEFAULT_STUN_SERVERS,
  type HostPort,
  mappingBehaviour,
  parseStunServer,
  resolveStunServers,
  StunClient,
} from "../../net/stun.ts";
import { UdpSocket } from "../../net/udp.ts";
import type { CheckResult } from "./check.ts";
import { flag, list } from "../context.ts";
import { portMappingFix } from "./fixes.ts";
import type { Resolved } from "../options.ts";

const RELAY_FIX =
  "Switch on UPnP or NAT-PMP in the router, forward a port (--listen 0.0.0.0:PORT), or have a member with a public address relay (`mailmeet host`, or `--relay`).";

export async function checkNat(
  r: Resolved,
  tcpPort: number,
  report: (c: CheckResult) => void,
): Promise<void> {
  const given = list(r, "stun");
  const interfaces = usableAddresses(systemInterfaces());
  let publicHost: string | undefined;
  if (given.includes("none")) {
    report({
      check: "nat",
      status: "skip",
      title: "nat: STUN is off (--stun none), so the router was not examined",
    });
  } else {
    const names = given.length > 0 ? given : DEFAULT_STUN_SERVERS;
    let servers: HostPort[];
    try {
      servers = await resolveStunServers(names.map(parseStunServer));
    } catch (err) {
      report({
        check: "nat",
        status: "fail",
        title: `nat: ${(err as Error).message}`,
        fix: "Use --stun HOST:PORT.",
      });
      servers = [];
    }
    const socket = await UdpSocket.bind();
    try {
      const stun = new StunClient((d, h, p) => socket.send(d, h, p));
      socket.onMessage((d) => void stun.handle(d));
      const answers = servers.length > 0 ? await stun.probe(servers) : [];
      const seen = answers.filter((a) => a !== undefined);
      publicHost = seen[0]?.host;
      const behaviour = mappingBehaviour(answers);
      if (seen.length === 0) {
        report({
          check: "nat",
          status: "warn",
          title: `nat: no STUN server answered (${names.join(", ")}): your public address is unknown`,
          fix:
            "UDP may be blocked here: peers on other networks can then reach you only through a relay. Check the firewall, or name a reachable server with --stun HOST:PORT.",
        });
      } else if (interfaces.some((a) => a.address === publicHost)) {
        report({
          check: "nat",
          status: "ok",
          title:
            `nat: none — this machine has the public address ${publicHost}: members reach it directly (unless a firewall blocks them)`,
        });
      } else if (behaviour === "symmetric") {
        report({
          check: "nat",
          status: "warn",
          title:
            `nat: your router (public address ${publicHost}) picks a new port for every destination (symmetric NAT): members behind ordinary routers still reach you, two such routers need a relay`,
          fix: RELAY_FIX,
        });
      } else if (behaviour === "eim") {
        report({
          check: "nat",
          status: "ok",
          title:
            `nat: your router (public address ${publicHost}) keeps one public port per connection (cone NAT): members reach you by hole punching`,
        });
      } else {
        report({
          check: "nat",
          status: "warn",
          title:
            `nat: public address ${publicHost}; only one STUN server answered, so the router's mapping is unknown`,
          fix: "Name two STUN servers with --stun so doctor can tell a symmetric NAT apart.",
        });
      }
    } finally {
      await socket.close();
    }
  }

  if (flag(r, "no-port-mapping")) {
    report({ check: "port_mapping", status: "skip", title: "port mapping: off (--no-port-mapping)" });
  } else {
    const lan = interfaces.find((a) => a.family === "IPv4" && isIPv4(a.address));
    const mapper = new PortMapper();
    const outcome = lan
      ? await mapper.open({ tcpPort, udpPort: tcpPort, localHost: lan.address, publicHost, budgetMs: 3000 })
      : { ok: false as const, reason: "this machine has no IPv4 address on a network" };
    await mapper.close();
    report(
      outcome.ok
        ? {
          check: "port_mapping",
          status: "ok",
          title:
            `port mapping: your router forwards ports on request (${outcome.mapping.method}, outside address ${outcome.mapping.external}): members anywhere reach you directly`,
        }
        : {
          check: "port_mapping",
          status: "warn",
          title:
            `port mapping: not available (${outcome.reason}); mailmeet punches through the router instead`,
          fix: portMappingFix(outcome),
        },
    );
  }

  const v6 = interfaces.find((a) => a.family === "IPv6" && isGlobalIPv6(a.address));
  report(
    v6
      ? {
        check: "ipv6",
        status: "ok",
        title:
          `ipv6: global address ${v6.address}: members with IPv6 can reach you directly unless your router's firewall blocks incoming connections`,
      }
      : { check: "ipv6", status: "skip", title: "ipv6: no global IPv6 address on this machine" },
  );
}
