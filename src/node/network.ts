/**
 * The network side of a node: its link key, the TCP listener, the UDP hub (STUN, punching, QUIC),
 * the router port mapping, the address candidates it publishes, the links registry, and relaying
 * for others and through others (design: "Reaching peers behind routers").
 *
 * Everything that needs no user decision happens here by itself: addresses are gathered before
 * the first request goes out (within GATHER_BUDGET_MS), a relayed link keeps trying to become
 * direct, and a new public address (the router restarted) is announced again.
 */
import {
  type Candidate,
  decodeCandidates,
  decodeMapping,
  describeCandidate,
  encodeCandidates,
} from "../protocol/candidate.ts";
import type { NetworkKey } from "../protocol/keys.ts";
import { isValidUserId, type PeerEntry } from "../protocol/messages.ts";
import { generateKeyPair, type KeyPair, LinkError } from "../protocol/noise.ts";
import { fromUtf8, utf8 } from "../protocol/bytes.ts";
import { gatherCandidates } from "../net/candidates.ts";
import { Connector, type ConnectTarget, type RelayProvider } from "../net/connector.ts";
import { systemInterfaces } from "../net/interfaces.ts";
import { acceptLink, type LinkListener, listenLinks } from "../net/link.ts";
import type { MuxStream } from "../net/mux.ts";
import { type PortMapOutcome, PortMapper } from "../net/portmap.ts";
import { PunchHub } from "../net/punch_hub.ts";
import {
  MuxByteStream,
  openRelayed,
  RELAY_IN_PROTOCOL,
  RELAY_PROTOCOL,
  RELAY_WAIT_MS,
  RelayService,
} from "../net/relay.ts";
import { DEFAULT_STUN_SERVERS, parseStunServer, resolveStunServers } from "../net/stun.ts";
import { HANDSHAKE_PAYLOAD_VERSION, NetPeerDialer } from "../roles/net_dialer.ts";
import type { Reach } from "../roles/peer.ts";
import type { EventSink } from "../roles/events.ts";
import type { Member } from "../apps/app_host.ts";
import { LinkRegistry } from "./link_registry.ts";
import { PeerExchange } from "./pex.ts";
import { RoomService } from "./room.ts";

/** How long STUN and the router get to answer (both usually answer in milliseconds). */
export const GATHER_BUDGET_MS = 1500;
/** The first request waits this long for the router's port mapping after STUN has answered. */
const PORT_MAPPING_WAIT_MS = 300;
/** A relayed link tries to go direct after these pauses (then every last one). */
const UPGRADE_AFTER_MS = [3_000, 30_000, 60_000, 120_000, 300_000, 600_000];
const UPGRADE_PROTOCOL = "upgrade";
/** How long one try to go direct (or to reach a relay) may take. */
const DIRECT_TRY_MS = 20_000;
/** How long a member heard of over a link is tried (both sides start at once: seconds suffice). */
const PEX_DIAL_WINDOW_MS = 30_000;
/** The side that lets the other ask a relay first waits this long for its relayed link. */
const RELAY_YIELD_MS = 4_000;
/** A flood of refused connections is logged at most this often. */
const REFUSED_LOG_MS = 1_000;

export interface NetworkOptions {
  key: NetworkKey;
  user: string;
  /** Where to accept TCP links; `wildcard` (the default 0.0.0.0) also tries IPv6 (dual stack). */
  listen: { host: string; port: number; wildcard: boolean };
  advertise?: { host: string; port: number };
  /** STUN servers as HOST:PORT; ["none"] or [] turns STUN off; undefined: the public defaults. */
  stun?: readonly string[];
  portMapping: boolean;
  /** "auto": relay for others when this node is reachable and is a dedicated host. */
  relay: "auto" | "on" | "off";
  /** "relay": a dedicated host that only relays (not a person in the room). */
  role: "peer" | "relay";
  dialTimeoutMs: number;
  blocked: ReadonlySet<string>;
  events: EventSink;
  /** Our reachability changed (new public address): the node tells its hosts again. */
  onReachChange?: () => void;
  staticKey?: KeyPair;
}

export class NodeNetwork {
  readonly links: LinkRegistry;
  readonly dialer: NetPeerDialer;
  readonly staticKey: KeyPair;
  readonly #o: NetworkOptions;
  readonly #listener: LinkListener;
  readonly #hub: PunchHub;
  readonly #mapper: PortMapper | undefined;
  readonly #direct: Connector;
  #reach: Reach;
  #relaying: boolean;
  readonly #known = new Map<string, PeerEntry>();
  /** The group's chat room, carried by every member node (undefined on a relay-only host). */
  room?: RoomService;
  readonly #upgrading = new Set<string>();
  #closed = false;

  private constructor(
    o: NetworkOptions,
    staticKey: KeyPair,
    links: LinkRegistry,
    listener: LinkListener,
    hub: PunchHub,
    mapper: PortMapper | undefined,
    reach: Reach,
    relaying: boolean,
  ) {
    this.#o = o;
    this.staticKey = staticKey;
    this.links = links;
    this.#listener = listener;
    this.#hub = hub;
    this.#mapper = mapper;
    this.#reach = reach;
    this.#relaying = relaying;
    const base = {
      staticKey,
      networkKey: o.key,
      localInfo: info(o),
      hub,
      tcpTimeoutMs: o.dialTimeoutMs,
      linked: (user: string) => links.has(user),
    };
    this.#direct = new Connector(base);
    const relayProvider: RelayProvider = { open: (t, signal, opts) => this.#openRelayed(t, signal, opts) };
    this.dialer = new NetPeerDialer(new Connector({ ...base, relay: relayProvider }), () => this.#reach);
  }

  static async start(o: NetworkOptions): Promise<NodeNetwork> {
    const staticKey = o.staticKey ?? generateKeyPair();
    const links = new LinkRegistry({ user: o.user, events: o.events, blocked: o.blocked });
    const ref: { net?: NodeNetwork } = {};
    const refused = throttle(REFUSED_LOG_MS);
    const listenOpts = {
      port: o.listen.port,
      staticKey,
      networkKey: o.key.secret,
      localInfo: info(o),
      onLink: (link: import("../net/link.ts").Link) => {
        const net = ref.net;
        if (!net) return void link.abort();
        try {
          links.adopt(net.dialer.wrap(link, {
            path: "direct",
            transport: "tcp",
            kind: "lan",
            address: link.remoteAddr,
            rttMs: link.rttMs,
          }));
        } catch (err) {
          o.events({ event: "link_refused", address: link.remoteAddr, reason: (err as Error).message });
        }
      },
      onError: (err: LinkError) => {
        const n = refused();
        if (n > 0) {
          o.events({
            event: "link_refused",
            address: /from (\S+?):? /.exec(err.message)?.[1] ?? "",
            reason: n > 1 ? `${err.message} (and ${n - 1} more refused in the last second)` : err.message,
          });
        }
      },
    };
    let listener: LinkListener;
    if (o.listen.wildcard) {
      try {
        listener = listenLinks({ ...listenOpts, hostname: "::" });
      } catch {
        listener = listenLinks({ ...listenOpts, hostname: "0.0.0.0" });
      }
    } else {
      listener = listenLinks({ ...listenOpts, hostname: o.listen.host });
    }
    const tcpPort = listener.addr.port;
    const listenHost = listener.addr.hostname;
    try {
      const stunList = o.stun === undefined ? DEFAULT_STUN_SERVERS : o.stun.filter((s) => s !== "none");
      const servers = await resolveStunServers(stunList.map(parseStunServer));
      const mapper = o.portMapping ? new PortMapper() : undefined;
      const lanHost = systemInterfaces().find((a) => a.family === "IPv4" && !a.address.startsWith("127."))
        ?.address;
      const hubPromise = PunchHub.open({
        networkKey: o.key,
        localKey: staticKey.publicKey,
        stun: servers,
        port: tcpPort,
        host: WILDCARDS.has(listenHost) ? "0.0.0.0" : listenHost,
        onInbound: (r) => {
          if (ref.net) void ref.net.#inboundPunch(r);
          else r.stream.close();
        },
        onChange: () => {
          if (ref.net) ref.net.#regather();
        },
        log: (e) => o.events({ event: "punch", peer: e.peer, stage: e.stage, detail: e.detail }),
      });
      // The router is asked while STUN answers; its outside address is checked against STUN's. A
      // router that answers at all answers in milliseconds: the request waits for it only a little,
      // and a mapping that comes later is announced with the next request.
      let settled = false;
      const mapping = mapper && lanHost
        ? mapper.open({ tcpPort, udpPort: tcpPort, localHost: lanHost, budgetMs: GATHER_BUDGET_MS })
        : undefined;
      const hub = await hubPromise;
      const checked = mapping?.then(async (outcome) => {
        await checkMapping(mapper!, hub, outcome, o.events);
        settled = true;
        return outcome;
      });
      await Promise.race([checked, new Promise((r) => setTimeout(r, PORT_MAPPING_WAIT_MS))]);
      if (checked && !settled) {
        void checked.then((outcome) => {
          if (outcome.ok && mapper?.mapping && ref.net) ref.net.#regather();
        });
      }
      const reach = computeReach(o, tcpPort, listenHost, hub, mapper, false);
      if (!reach) {
        throw new LinkError(
          "Cannot find an address others could dial: pass --advertise IP:PORT (your public or LAN address).",
          "connect",
        );
      }
      const relaying = o.relay === "on" ||
        (o.relay === "auto" && o.role === "relay" && isReachable(reach.candidates, hub));
      reach.relay = relaying;
      const net = new NodeNetwork(o, staticKey, links, listener, hub, mapper, reach, relaying);
      ref.net = net;
      net.#serve();
      o.events({
        event: "candidates",
        candidates: reach.candidates.map(describeCandidate),
        mapping: hub.mapping,
        ...(hub.publicAddress ? { public: `${hub.publicAddress.host}:${hub.publicAddress.port}` } : {}),
        ...(mapper?.mapping ? { port_mapping: `${mapper.mapping.method} ${mapper.mapping.external}` } : {}),
      });
      return net;
    } catch (err) {
      await listener.close();
      throw err;
    }
  }

  get tcpPort(): number {
    return this.#listener.addr.port;
  }

  get listenHost(): string {
    return this.#listener.addr.hostname;
  }

  get publicAddress() {
    return this.#hub.publicAddress;
  }

  get mapping() {
    return this.#hub.mapping;
  }

  get portMapping() {
    return this.#mapper?.mapping;
  }

  get relaying(): boolean {
    return this.#relaying;
  }

  reach(): Reach {
    return this.#reach;
  }

  /** Remembers members heard of (replies, introductions, syncs): relays, and partners for going direct. */
  learn(entries: readonly PeerEntry[]): void {
    for (const e of entries) {
      if (e.user === this.#o.user) continue;
      const old = this.#known.get(e.user);
      if (!old || old.seen <= e.seen) this.#known.set(e.user, e);
    }
  }

  /** How to reach the members linked now, as last heard: what a node coming back dials first. */
  linkedEntries(): PeerEntry[] {
    return [...this.#known.values()].filter((e) => this.links.has(e.user));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopDials.abort();
    this.#pex?.close();
    // Said before the links close, so the room hears at once that we left.
    this.room?.close();
    await this.links.close();
    await this.#listener.close();
    await this.#hub.close();
    await this.#mapper?.close();
  }

  // ─── Services on every link ────────────────────────────────────────────────────────────────

  #serve(): void {
    const o = this.#o;
    if (this.#relaying) {
      const service = new RelayService({
        links: this.links,
        onRelay: (e) => o.events({ event: "relayed", ...e }),
      });
      this.links.serve(RELAY_PROTOCOL, (s, m) => void service.accept(s, m.user, m.key));
    } else {
      this.links.serve(
        RELAY_PROTOCOL,
        (s) => s.reset("this member does not relay (it runs without --relay)"),
      );
    }
    this.links.serve(RELAY_IN_PROTOCOL, (s, m) => void this.#relayIn(s, m));
    this.links.serve(UPGRADE_PROTOCOL, (s, m) => void this.#upgradeAnswer(s, m));
    this.links.attach({
      added: (m) => {
        if (m.route.path === "relay") void this.#upgradeLoop(m);
      },
    });
    if (o.role === "peer") {
      this.#pex = new PeerExchange({
        user: o.user,
        self: () => ({
          user: o.user,
          ...this.#reach,
          linkKey: this.staticKey.publicKey,
          seen: Date.now(),
          flagged: false,
        }),
        dial: (e) => void this.#pexDial(e),
        isLinked: (user) => this.links.has(user),
        blocked: o.blocked,
        onLearn: (e) => this.learn([e]),
      });
      this.links.attach(this.#pex);
      this.room = new RoomService({
        user: o.user,
        log: (message) => o.events({ event: "info", message }),
      });
      this.links.attach(this.room);
      this.room.start();
    }
  }

  #pex?: PeerExchange;
  readonly #pexDialing = new Set<string>();
  readonly #stopDials = new AbortController();

  /** A member heard of over a link: reach it (it reaches for us at the same moment). */
  async #pexDial(e: PeerEntry): Promise<void> {
    if (this.#closed || this.#pexDialing.has(e.user) || this.links.has(e.user)) return;
    this.#pexDialing.add(e.user);
    try {
      const link = await this.dialer.dial(e, Date.now() + PEX_DIAL_WINDOW_MS, {
        signal: this.#stopDials.signal,
      });
      this.links.adopt(link);
    } catch (err) {
      if (!this.links.has(e.user) && !this.#closed) {
        this.room?.unreachable(e.user, (err as Error).message);
        this.#o.events({
          event: "info",
          message: `could not reach ${e.user}, heard of over a link: ${(err as Error).message}`,
        });
      }
    } finally {
      this.#pexDialing.delete(e.user);
    }
  }

  /** The far end of a relay: run the listener's side of the handshake over the spliced stream. */
  async #relayIn(stream: MuxStream, relay: Member): Promise<void> {
    const meta = stream.meta as { user?: unknown } | undefined;
    const who = typeof meta?.user === "string" && isValidUserId(meta.user) ? meta.user : "a member";
    try {
      const link = await acceptLink(new MuxByteStream(stream), {
        staticKey: this.staticKey,
        networkKey: this.#o.key.secret,
        localInfo: { ...info(this.#o), path: "relayed" },
        peer: `${who} via ${relay.user}`,
      });
      this.links.adopt(this.dialer.wrap(link, {
        path: "relay",
        transport: relay.route.transport,
        kind: "relayed",
        address: `via ${relay.user}`,
        rttMs: link.rttMs,
      }));
    } catch (err) {
      this.#o.events({ event: "link_refused", address: `via ${relay.user}`, reason: (err as Error).message });
    }
  }

  /** Through a relay both of us reach: linked relays first, then ones we dial for it. */
  async #openRelayed(
    target: { user: string; linkKey: Uint8Array },
    signal: AbortSignal,
    opts: { yieldTo?: boolean } = {},
  ) {
    const relays = [...this.#known.values()]
      .filter((e) => e.relay && e.user !== target.user)
      .sort((a, b) => Number(this.links.has(b.user)) - Number(this.links.has(a.user)) || b.seen - a.seen);
    let last: Error = new LinkError(`No relay is known that could reach ${target.user}.`, "connect");
    for (const r of relays) {
      if (signal.aborted) break;
      let mux = this.links.muxFor(r.linkKey);
      if (!mux) {
        try {
          const c = await this.#direct.connect(r, Date.now() + DIRECT_TRY_MS, signal);
          this.links.adopt(this.dialer.wrap(c.link, c.route));
          mux = this.links.muxFor(r.linkKey);
        } catch (err) {
          last = err as Error;
          continue;
        }
      }
      if (!mux) continue;
      if (opts.yieldTo) {
        // Linked to the relay now; give the other side's request time to reach us through it.
        await new Promise((r) => setTimeout(r, RELAY_YIELD_MS));
        if (this.links.has(target.user)) {
          throw new LinkError(`${target.user} reached us through a relay.`, "closed");
        }
      }
      try {
        const stream = await openRelayed(mux, target, RELAY_WAIT_MS + 2_000);
        return { stream, via: r.user };
      } catch (err) {
        last = err as Error;
      }
    }
    throw last;
  }

  async #inboundPunch(r: import("../net/punch_hub.ts").PunchResult): Promise<void> {
    try {
      const c = await this.#direct.handshakeOver(r);
      this.links.adopt(this.dialer.wrap(c.link, c.route));
    } catch (err) {
      this.#o.events({
        event: "link_refused",
        address: `${r.remote.host}:${r.remote.port}`,
        reason: (err as Error).message,
      });
    }
  }

  // ─── From relayed to direct ───────────────────────────────────────────────────────────────

  /**
   * While a member is linked through a relay, the side with the smaller user id asks, now and then,
   * to try a direct path: both send each other their current addresses over the relayed link and
   * start punching at the same moment. A direct link that authenticates replaces the relayed one.
   */
  async #upgradeLoop(m: Member): Promise<void> {
    if (this.#o.user > m.user || this.#upgrading.has(m.user)) return;
    this.#upgrading.add(m.user);
    try {
      for (let i = 0; !this.#closed; i++) {
        const wait = UPGRADE_AFTER_MS[Math.min(i, UPGRADE_AFTER_MS.length - 1)];
        const stillRelayed = await Promise.race([
          new Promise<boolean>((r) => setTimeout(() => r(true), wait)),
          m.closed.then(() => false),
        ]);
        if (!stillRelayed || this.links.member(m.user)?.route.path !== "relay") return;
        try {
          const stream = m.mux.open(UPGRADE_PROTOCOL, {});
          await writeJson(stream, this.#reachWire());
          const theirs = await readJson(stream);
          stream.closeWrite();
          await this.#goDirect(m, theirs);
        } catch {
          // the relayed link went away, or the other side refused: next round
        }
      }
    } finally {
      this.#upgrading.delete(m.user);
    }
  }

  async #upgradeAnswer(stream: MuxStream, m: Member): Promise<void> {
    try {
      const theirs = await readJson(stream);
      await writeJson(stream, this.#reachWire());
      stream.closeWrite();
      await this.#goDirect(m, theirs);
    } catch {
      stream.reset("cannot try a direct path now");
    }
  }

  async #goDirect(m: Member, theirs: Record<string, unknown>): Promise<void> {
    const known = this.#known.get(m.user);
    const key = (m as Member & { key?: Uint8Array }).key ?? known?.linkKey;
    if (!key) return;
    const target: ConnectTarget = {
      user: m.user,
      linkKey: key,
      candidates: decodeCandidates(theirs.c),
      mapping: decodeMapping(theirs.m),
    };
    try {
      const c = await this.#direct.connect(target, Date.now() + DIRECT_TRY_MS);
      this.links.adopt(this.dialer.wrap(c.link, c.route));
    } catch {
      // still no direct path: the relay stays
    }
  }

  #reachWire(): Record<string, unknown> {
    return { c: encodeCandidates(this.#reach.candidates), m: this.#reach.mapping };
  }

  #regather(): void {
    const next = computeReach(
      this.#o,
      this.tcpPort,
      this.listenHost,
      this.#hub,
      this.#mapper,
      this.#relaying,
    );
    if (!next) return;
    this.#reach = next;
    this.#o.events({
      event: "candidates",
      candidates: next.candidates.map(describeCandidate),
      mapping: next.mapping,
    });
    this.#o.onReachChange?.();
  }
}

const WILDCARDS = new Set(["0.0.0.0", "::"]);

/** What this node says of itself inside every handshake: who, and whether it only relays. */
function info(o: NetworkOptions): Record<string, unknown> {
  return { user: o.user, v: HANDSHAKE_PAYLOAD_VERSION, ...(o.role === "relay" ? { role: "relay" } : {}) };
}

/** A mapping helps only when the router's outside address is the public one (no NAT beyond it). */
async function checkMapping(
  mapper: PortMapper,
  hub: PunchHub,
  outcome: PortMapOutcome,
  events: EventSink,
): Promise<void> {
  if (!outcome.ok) {
    events({ event: "info", message: `no port mapping: ${outcome.reason}` });
    return;
  }
  const pub = hub.publicAddress?.host;
  if (pub && mapper.mapping && mapper.mapping.external !== pub) {
    events({
      event: "info",
      message:
        `port mapping not used: the router's outside address ${mapper.mapping.external} is not the public one STUN saw (${pub}); another NAT is in between`,
    });
    await mapper.close();
  }
}

function computeReach(
  o: NetworkOptions,
  tcpPort: number,
  listenHost: string,
  hub: PunchHub,
  mapper: PortMapper | undefined,
  relaying: boolean,
): Reach | undefined {
  const g = gatherCandidates({
    tcpPort,
    listenHost,
    interfaces: systemInterfaces(),
    advertise: o.advertise,
    udp: hub.candidates(),
    publicHost: hub.publicAddress?.host,
    mapped: mapper?.candidates(),
  });
  if (!g) return undefined;
  return {
    host: g.primary.host,
    port: g.primary.port,
    candidates: g.candidates,
    mapping: hub.mapping,
    relay: relaying,
    role: o.role,
  };
}

/** Reachable from anywhere: a forwarded/mapped port, --advertise, or no NAT at all. */
function isReachable(candidates: readonly Candidate[], hub: PunchHub): boolean {
  return candidates.some((c) =>
    c.kind === "mapped" || c.kind === "advertised" ||
    (c.kind === "public" && c.transport === "tcp" && hub.publicAddress?.host === c.host &&
      systemInterfaces().some((a) => a.address === c.host))
  );
}

/** Counts calls; returns how many happened since the last time it said "log" (0: stay quiet). */
function throttle(everyMs: number): () => number {
  let last = 0;
  let count = 0;
  return () => {
    count++;
    const now = Date.now();
    if (now - last < everyMs) return 0;
    last = now;
    const n = count;
    count = 0;
    return n;
  };
}

async function writeJson(stream: MuxStream, value: unknown): Promise<void> {
  await stream.write(utf8(`${JSON.stringify(value)}\n`));
}

async function readJson(stream: MuxStream): Promise<Record<string, unknown>> {
  let text = "";
  for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
    text += fromUtf8(chunk);
    if (text.includes("\n")) break;
    if (text.length > 8192) throw new Error("too long");
  }
  const v = JSON.parse(text.split("\n")[0]);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
  return v;
}
