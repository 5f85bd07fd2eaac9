/**
 * The NAT lab: Linux network namespaces playing home routers (full cone, restricted cone, port
 * restricted, symmetric, port forward, UPnP/NAT-PMP, carrier-grade NAT), an "internet" switch,
 * public hosts and a STUN/TURN server, built for one test and torn down after it:
 *
 *   await using lab = await natLab({ sites: [{ name: "a", nat: "symmetric" }, { name: "b", nat: "upnp" }] });
 *   const peer = lab.spawn(lab.host("a").ns, Deno.execPath(), ["run", "-A", "main.ts", `--stun=${lab.stunServers[0]}`]);
 *   const mapped = await lab.portMappings("b"); // what miniupnpd mapped on b's router
 *
 * Needs root and `ip`/`nft` (scripts/natlab/tools.sh installs them and unpacks coturn and
 * miniupnpd); tests check labSkipReason() and skip without them. See tests/helpers/natlab/.
 */
export {
  type LabHost,
  type LabRouter,
  type NatLab,
  natLab,
  type PortLease,
  type PortMapping,
  type SpawnOptions,
  type TurnServer,
} from "./natlab/lab.ts";
export type { LabSpec, NatKind, SiteSpec } from "./natlab/spec.ts";
export { LabError, type LabErrorCode } from "./natlab/errors.ts";
export { labSkipReason } from "./natlab/tools.ts";
export { isAlive, listNamespaces } from "./natlab/system.ts";
export { TURN_CLIENT } from "./natlab/daemons.ts";
export {
  EXPECT_TIMEOUT_MS,
  hostOf,
  LineProcess,
  PortMapper,
  portMapper,
  type ProbeEvent,
  SETTLE_MS,
  type StunResult,
  tcpConnect,
  tcpListener,
  UdpProbe,
  udpProbe,
} from "./natlab/probe.ts";
