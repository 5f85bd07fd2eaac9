/**
 * The one place the CLI builds a host role from its settings: `mailmeet host` (a dedicated host)
 * and a node promoted to host (cli/node.ts) get the same settings from the same options.
 */
import { DEFAULT_SKEW_MS, type HostSettings } from "../roles/host.ts";
import type { PeerEntry } from "../protocol/messages.ts";
import type { NodeNetwork } from "../node/network.ts";
import { num, str } from "./context.ts";
import type { Resolved } from "./options.ts";

/** The host settings the options give, for the host at `address` passing what it learns to `upstream`. */
export function hostSettings(r: Resolved, address: string, upstream: readonly string[]): HostSettings {
  return {
    address,
    marker: str(r, "marker"),
    maxAgeMs: num(r, "max-age"),
    skewMs: DEFAULT_SKEW_MS,
    upstream,
    syncIntervalMs: num(r, "sync-interval"),
  };
}

/** A host that is also reachable as a member (a promoted node, or a relaying host) offers itself first: it is online now. */
export function selfEntry(network: NodeNetwork, user: string): () => PeerEntry {
  return () => ({
    user,
    ...network.reach(),
    linkKey: network.dialer.publicKey,
    seen: Date.now(),
    flagged: false,
  });
}
