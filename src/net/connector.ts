/**
 * Reaching one member: every candidate path at once (design: "Punching: all candidate pairs in
 * parallel"), the first that authenticates wins unless a better kind is still trying (a short
 * grace), and a relay only when nothing direct has answered for a while.
 *
 *  - TCP to each TCP candidate (LAN, global IPv6, mapped, forwarded public address, --advertise);
 *  - UDP hole punching into QUIC through the node's PunchHub;
 *  - a relayed stream through a member both sides reach (RelayProvider).
 *
 * Whatever the path, the Noise handshake of src/net/link.ts runs over it, with the key the host
 * published: a path that reaches the wrong machine (another home's LAN address, a recycled IP)
 * fails the handshake and is simply one of the paths that did not work.
 */
import {
  type Candidate,
  formatHostPort,
  type MappingBehaviour,
  type PathKind,
  pathRank,
} from "../protocol/candidate.ts";
import { equalBytes } from "../protocol/bytes.ts";
import { type KeyPair, LinkError } from "../protocol/noise.ts";
import type { NetworkKey } from "../protocol/keys.ts";
import { acceptLink, dialLink, type HandshakePayload, initiateLink, type Link } from "./link.ts";
import type { PunchHub, PunchResult } from "./punch_hub.ts";
import type { ByteStream } from "./secure_channel.ts";
import { formatHp } from "./punch.ts";

/** How a link reaches its member: what `connected` events and `status` report. */
export interface Route {
  path: "direct" | "relay";
  transport: "tcp" | "quic";
  kind: PathKind;
  /** The other side's address on this path ("via NAME" for a relay). */
  address: string;
  /** One round trip as the handshake measured it, ms. */
  rttMs: number;
}

export interface ConnectedLink {
  link: Link;
  route: Route;
}

/** Who to reach: what a host's reply, an introduction or a peer told us. */
export interface ConnectTarget {
  user: string;
  linkKey: Uint8Array;
  candidates: readonly Candidate[];
  mapping: MappingBehaviour;
}

/** Links through a third member, when no direct path exists (src/net/relay.ts). */
export interface RelayProvider {
  /**
   * A byte stream to `target` through a relay; rejects when no relay can reach it. With `yieldTo`,
   * the provider links to a relay but lets the other side ask first (both fail over to a relay
   * at about the same moment, and two relayed links would mean closing one and what runs on it).
   */
  open(
    target: { user: string; linkKey: Uint8Array },
    signal: AbortSignal,
    opts?: { yieldTo?: boolean },
  ): Promise<{ stream: ByteStream; via: string }>;
}

export interface ConnectorOptions {
  staticKey: KeyPair;
  networkKey: NetworkKey;
  /** Sent inside every handshake (user id, version); the path is added per attempt. */
  localInfo: HandshakePayload;
  hub?: PunchHub;
  relay?: RelayProvider;
  /** Budget of one TCP attempt (--dial-timeout). */
  tcpTimeoutMs: number;
  /** Start a relay attempt when nothing direct authenticated after this long. */
  relayAfterMs?: number;
  /** After the first success, wait this long for a better kind still trying. */
  graceMs?: number;
  /** Overrides PUNCH_AFTER_TCP_MS (tests). */
  punchAfterTcpMs?: number;
  /** Whether we hold a link to `user` already (one made from the other side meanwhile). */
  linked?: (user: string) => boolean;
}

export const DEFAULT_RELAY_AFTER_MS = 8_000;
/**
 * When both ends map endpoint-dependently (two symmetric NATs) punching practically never works
 * (the lab never saw it), so the relay starts after this instead: long enough for a LAN or
 * forwarded TCP path to win first, short of the 8 s that cost every such pair 6–7 s.
 */
export const HARD_PAIR_RELAY_AFTER_MS = 1_000;
export const DEFAULT_GRACE_MS = 300;

const MIN_GRACE_MS = 50;
/**
 * How long punching waits for TCP attempts begun at the same time. A TCP path that works has
 * answered by then on a LAN; over the Internet a punch takes round trips, and the other side's
 * introduction comes by mail, so starting this much later costs it nothing measurable.
 */
export const PUNCH_AFTER_TCP_MS = 30;
/** TCP candidates tried at once (a reply lists at most 12 per member). */
const MAX_TCP_ATTEMPTS = 8;

interface Attempt {
  kind: PathKind;
  done: boolean;
  promise: Promise<ConnectedLink>;
}

export class Connector {
  constructor(readonly opts: ConnectorOptions) {}

  /** The best path to `target` that authenticates before `deadline` (ms since the epoch). */
  async connect(
    target: ConnectTarget,
    deadline: number,
    signal?: AbortSignal,
    /** TCP attempts wait for this and run only if it says true (punching starts at once). */
    tcpWhen?: Promise<boolean>,
  ): Promise<ConnectedLink> {
    const o = this.opts;
    const stop = new AbortController();
    let wake = () => {};
    const onAbort = () => stop.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    stop.signal.addEventListener("abort", () => wake(), { once: true });
    const attempts: Attempt[] = [];
    const errors: Error[] = [];
    let best: ConnectedLink | undefined;
    /** Some path authenticated: punching that has not begun need not. */
    let linked = false;
    let graceEnd = Infinity;
    const add = (kind: PathKind, run: () => Promise<ConnectedLink>) => {
      const a: Attempt = { kind, done: false, promise: run() };
      attempts.push(a);
      a.promise.then((r) => {
        a.done = true;
        linked = true;
        if (best && pathRank(r.route.kind) >= pathRank(best.route.kind)) {
          r.link.abort();
          return;
        }
        best?.link.abort();
        best = r;
        // A better path that works would have answered within a few round trips of this one.
        const grace = o.graceMs ?? Math.min(DEFAULT_GRACE_MS, Math.max(MIN_GRACE_MS, 3 * r.route.rttMs));
        graceEnd = Math.min(graceEnd, Date.now() + grace);
        wake();
      }, (err) => {
        a.done = true;
        errors.push(err);
        wake();
      });
    };
    let relayAdded = false;
    const addRelay = () => {
      if (relayAdded || !o.relay || stop.signal.aborted) return;
      relayAdded = true;
      add("relayed", () => this.#relayed(target, stop.signal));
      wake();
    };
    const tcp = target.candidates
      .filter((c) => c.transport === "tcp")
      .sort((a, b) => pathRank(a.kind) - pathRank(b.kind))
      .slice(0, MAX_TCP_ATTEMPTS);
    for (const c of tcp) {
      add(c.kind, async () => {
        if (tcpWhen && !(await tcpWhen)) {
          throw new LinkError(`TCP to ${target.user} was not needed.`, "closed");
        }
        return await this.#tcp(target, c, deadline, stop.signal);
      });
    }
    if (o.hub?.quic && target.candidates.some((c) => c.transport === "udp")) {
      // With TCP connecting at once, punching waits for it a moment: its set-up (a UDP socket, the
      // interface scan, the QUIC endpoint) is 5–6 ms of this process's time that would otherwise
      // delay the TCP handshake that wins on a LAN (bench meet: dial → connected 20 → 14 ms).
      const tcpSettled = tcpWhen || tcp.length === 0
        ? undefined
        : Promise.allSettled(attempts.map((a) => a.promise));
      add("punched", async () => {
        if (tcpSettled) {
          await settledOrAfter(tcpSettled, o.punchAfterTcpMs ?? PUNCH_AFTER_TCP_MS, stop.signal);
        }
        if (stop.signal.aborted || linked) {
          throw new LinkError(`Punching to ${target.user} was not needed.`, "closed");
        }
        return await this.#punched(target, deadline, stop.signal);
      });
    }
    const hardPair = o.hub?.mapping === "symmetric" && target.mapping === "symmetric";
    const relayAfter = o.relayAfterMs ?? (hardPair ? HARD_PAIR_RELAY_AFTER_MS : DEFAULT_RELAY_AFTER_MS);
    const relayTimer = setTimeout(addRelay, relayAfter);
    // Why the attempts still running are stopped, for them to pass on (the punch tells the other side).
    let outcome = "no path answered in time";
    try {
      for (;;) {
        const now = Date.now();
        const pending = attempts.filter((a) => !a.done);
        if (best) {
          const better = pending.some((a) => pathRank(a.kind) < pathRank(best!.route.kind));
          if (!better || now >= graceEnd) break;
        } else if (pending.length === 0) {
          // Every direct path failed: go through a relay now rather than at the timer.
          if (o.relay && !relayAdded) {
            addRelay();
            continue;
          }
          break;
        }
        if (now >= deadline || stop.signal.aborted) break;
        const wait = Math.min(deadline - now, best ? graceEnd - now : Infinity, 1000);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(1, wait));
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = () => {};
      }
      if (!best) throw summarize(errors, stop.signal, target.user);
      // Late successes of the losers are closed as they come (above); stop the rest now.
      const chosen: ConnectedLink = best;
      best = undefined; // from here, any late success compares against nothing and is aborted below
      for (const a of attempts) a.promise.then((r) => r !== chosen && r.link.abort(), () => {});
      outcome = "another path was used";
      return chosen;
    } finally {
      clearTimeout(relayTimer);
      signal?.removeEventListener("abort", onAbort);
      const stopRest = () => stop.abort(new Error(outcome)); // a no-op after the caller's own abort
      // With a link chosen, its caller goes first: stopping a punch (its sockets, the message to the
      // other side) is a few ms that need not come before the link is used.
      if (outcome === "another path was used") setTimeout(stopRest, 0);
      else stopRest();
    }
  }

  async #tcp(
    target: ConnectTarget,
    c: Candidate,
    deadline: number,
    signal: AbortSignal,
  ): Promise<ConnectedLink> {
    const o = this.opts;
    const link = await dialLink({
      hostname: c.host,
      port: c.port,
      staticKey: o.staticKey,
      remoteStatic: target.linkKey,
      networkKey: o.networkKey.secret,
      localInfo: { ...o.localInfo, path: c.kind },
      timeoutMs: Math.max(1, Math.min(o.tcpTimeoutMs, deadline - Date.now())),
      signal,
    });
    return {
      link,
      route: {
        path: "direct",
        transport: "tcp",
        kind: c.kind,
        address: formatHostPort(c.host, c.port),
        rttMs: link.rttMs,
      },
    };
  }

  async #punched(target: ConnectTarget, deadline: number, signal: AbortSignal): Promise<ConnectedLink> {
    const r = await this.opts.hub!.connect(target.linkKey, target, deadline, signal);
    return await this.handshakeOver(r, target.linkKey);
  }

  /** Runs Noise over a punched QUIC stream; the punch's client side is the Noise initiator. */
  async handshakeOver(r: PunchResult, expectKey?: Uint8Array): Promise<ConnectedLink> {
    const o = this.opts;
    const address = formatHp(r.remote);
    const link = r.role === "client"
      ? await initiateLink(r.stream, {
        staticKey: o.staticKey,
        remoteStatic: r.remoteKey,
        networkKey: o.networkKey.secret,
        localInfo: { ...o.localInfo, path: r.kind },
        peer: address,
      })
      : await acceptLink(r.stream, {
        staticKey: o.staticKey,
        networkKey: o.networkKey.secret,
        localInfo: { ...o.localInfo, path: r.kind },
        peer: address,
      });
    // The punch packets named a key; only the handshake proves it.
    if (!equalBytes(link.remoteStatic, expectKey ?? r.remoteKey)) {
      link.abort();
      throw new LinkError(`${address} proved another key than the one it punched with.`, "wrong_peer");
    }
    return {
      link,
      route: {
        path: "direct",
        transport: "quic",
        kind: r.kind === "public" ? "punched" : r.kind,
        address,
        rttMs: link.rttMs,
      },
    };
  }

  async #relayed(target: ConnectTarget, signal: AbortSignal): Promise<ConnectedLink> {
    const o = this.opts;
    // The side with the larger user id yields: the other one asks the relay first.
    const yieldTo = String(o.localInfo.user) > target.user;
    const { stream, via } = await o.relay!.open(target, signal, { yieldTo });
    const link = await initiateLink(stream, {
      staticKey: o.staticKey,
      remoteStatic: target.linkKey,
      networkKey: o.networkKey.secret,
      localInfo: { ...o.localInfo, path: "relayed" },
      peer: `${target.user} via ${via}`,
    });
    return {
      link,
      route: { path: "relay", transport: "tcp", kind: "relayed", address: `via ${via}`, rttMs: link.rttMs },
    };
  }
}

/** Resolves when `settled` does, `ms` have passed, or `signal` aborts, whichever is first; leaves no timer behind. */
function settledOrAfter(settled: Promise<unknown>, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    void settled.then(done);
  });
}

/** One sentence for "no path worked": the most telling reason first. */
function summarize(errors: Error[], signal: AbortSignal, user: string): LinkError {
  if (signal.aborted && errors.length === 0) {
    return new LinkError(`The dial to ${user} was cancelled.`, "closed");
  }
  const order: LinkError["code"][] = ["network_key", "wrong_peer", "handshake", "timeout", "connect"];
  const links = errors.filter((e): e is LinkError => e instanceof LinkError);
  for (const code of order) {
    const e = links.find((l) => l.code === code);
    if (e) return new LinkError(e.message, e.code, { cause: errors });
  }
  const first = errors[0];
  return new LinkError(first ? first.message : `No path to ${user} answered in time.`, "timeout", {
    cause: errors,
  });
}
