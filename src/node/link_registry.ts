/**
 * The node's links, one per member (design: "One node per person"): each link a peer role dials or
 * the listener accepts comes here; a multiplexer goes on it once, and its streams are handed to
 * whichever app or service takes their protocol, so chat, tunnels, transfers and relaying share
 * every link at once.
 *
 * When a second link to the same member appears (both dialled at once, or a direct path found
 * while a relayed one is in use), both ends must keep the same one: the better route kind wins,
 * and between equals the link dialled by the smaller user id — a rule both sides compute alike.
 */
import { type PathKind, pathRank } from "../protocol/candidate.ts";
import { b64u } from "../protocol/bytes.ts";
import { Mux, type MuxStream } from "../net/mux.ts";
import type { RelayLinks } from "../net/relay.ts";
import { datagramApp, type LinkApp, type Member, streamApp } from "../apps/app_host.ts";
import { decodeServices, type ExposedService, SERVICES_PROTOCOL } from "../apps/tunnel_services.ts";
import { readLines } from "./control.ts";
import {
  echoProbes,
  RTT_EVERY_MS,
  RTT_PROTOCOL,
  RTT_TELL_MS,
  RTT_TELL_SHARE,
  RttProber,
  smoothRtt,
} from "./rtt.ts";
import type { LinkSet } from "../roles/peer.ts";
import type { EventSink } from "../roles/events.ts";
import type { NetLinkedPeer } from "../roles/net_dialer.ts";

class LinkedMember implements Member {
  readonly mux: Mux;
  readonly closed: Promise<string | undefined>;
  /** What each of the member's "services" streams said last (one per tunnel it runs). */
  readonly announced = new Map<MuxStream, ExposedService[]>();

  constructor(readonly peer: NetLinkedPeer, route: (m: LinkedMember) => Mux) {
    this.mux = route(this);
    this.closed = this.mux.closed;
    void this.mux.closed.then((reason) => peer.ended(reason));
  }

  get user(): string {
    return this.peer.user;
  }
  get address(): string {
    return this.peer.address;
  }
  /** The link's round trip, smoothed over the probes since it came up (src/node/rtt.ts). */
  rtt?: number;

  get route() {
    return this.rtt === undefined ? this.peer.route : { ...this.peer.route, rttMs: this.rtt };
  }
  get services(): ExposedService[] {
    return [...this.announced.values()].flat();
  }
  get key(): Uint8Array {
    return this.peer.link.remoteStatic;
  }
  /** A dedicated host that only relays: a link for relaying, not a person in the group. */
  get relayOnly(): boolean {
    return this.peer.link.remotePayload.role === "relay";
  }
}

export interface LinkRegistryOptions {
  /** Our own user id (for the tie-break between two links to one member). */
  user: string;
  events: EventSink;
  /** Users whose links are refused at once. */
  blocked?: ReadonlySet<string>;
}

export class LinkRegistry implements LinkSet, RelayLinks {
  readonly #members = new Map<string, LinkedMember>();
  readonly #apps = new Set<LinkApp>();
  readonly #services = new Map<string, (stream: MuxStream, m: Member & { key: Uint8Array }) => void>();
  readonly #keyWaiters = new Map<string, Set<(mux: Mux) => void>>();
  #firstLink = Promise.withResolvers<void>();
  #closed = false;

  constructor(readonly opts: LinkRegistryOptions) {
    this.#services.set(SERVICES_PROTOCOL, (s, m) => void this.#readServices(s, m as LinkedMember));
    this.#services.set(RTT_PROTOCOL, (s) => void echoProbes(s));
  }

  /** A member tells what its tunnels expose; apps hear of every change (src/apps/tunnel_services.ts). */
  async #readServices(stream: MuxStream, m: LinkedMember): Promise<void> {
    const changed = () => {
      if (this.#members.get(m.user) !== m) return;
      for (const app of this.#apps) app.servicesChanged?.(m);
    };
    try {
      for await (const line of readLines(stream)) {
        const list = decodeServices(line);
        if (!list) continue;
        m.announced.set(stream, list);
        changed();
      }
    } catch {
      // the stream was reset: the tunnel behind it is gone
    }
    if (m.announced.delete(stream)) changed();
  }

  /** Resolves when the first link to a member of the group (not a relay) is up. */
  get firstLink(): Promise<void> {
    return this.#firstLink.promise;
  }

  /** Links to members of the group (relay-only hosts not counted). */
  get size(): number {
    return this.#peers().length;
  }

  has(user: string): boolean {
    const m = this.#members.get(user);
    return m !== undefined && !m.relayOnly;
  }

  members(): Member[] {
    return this.#peers();
  }

  #peers(): LinkedMember[] {
    return [...this.#members.values()].filter((m) => !m.relayOnly);
  }

  member(user: string): Member | undefined {
    return this.#members.get(user);
  }

  /** A node-level stream protocol (relay, relay-in): taken whatever apps run. */
  serve(protocol: string, handler: (stream: MuxStream, m: Member & { key: Uint8Array }) => void): void {
    this.#services.set(protocol, handler);
  }

  /** An app takes its protocols' streams and hears of every member, linked now or later. */
  attach(app: LinkApp): () => void {
    this.#apps.add(app);
    for (const m of this.#peers()) app.added?.(m);
    return () => void this.#apps.delete(app);
  }

  adopt(link: NetLinkedPeer): boolean {
    if (this.#closed || this.opts.blocked?.has(link.user)) {
      if (!this.#closed) {
        this.opts.events({ event: "link_refused", address: link.address, reason: `${link.user} is blocked` });
      }
      void link.close();
      return false;
    }
    const existing = this.#members.get(link.user);
    // Two callers of one shared dial (NetPeerDialer.dial) each hand over its link: it is ours already.
    if (existing?.peer === link) return true;
    if (existing) {
      if (!this.#better(link, existing.peer)) {
        void link.close();
        return false;
      }
      this.#members.delete(link.user);
      this.opts.events({
        event: "link_replaced",
        peer: link.user,
        path: link.route.path,
        transport: link.route.transport,
        kind: link.route.kind,
      });
      void existing.mux.close();
    }
    const m = new LinkedMember(link, (member) =>
      new Mux(link.link, {
        peer: link.user,
        onStream: (s) => this.#route(s, member),
        onDatagram: (ch, data) => this.#datagram(ch, data, member),
      }));
    this.#members.set(link.user, m);
    const r = link.route;
    if (m.relayOnly) {
      if (!existing) {
        this.opts.events({ event: "info", message: `linked to ${link.user}, a relay (${link.address})` });
      }
    } else if (!existing) {
      this.opts.events({
        event: "connected",
        peer: link.user,
        address: link.address,
        direction: link.direction,
        path: r.path,
        transport: r.transport,
        kind: r.kind,
        rtt_ms: Math.round(r.rttMs * 10) / 10,
      });
    }
    if (!m.relayOnly) this.#firstLink.resolve();
    for (const w of this.#keyWaiters.get(b64u(m.key)) ?? []) w(m.mux);
    this.#keyWaiters.delete(b64u(m.key));
    if (!m.relayOnly) {
      for (const app of this.#apps) app.added?.(m);
      this.#measure(m);
    }
    void m.closed.then((reason) => {
      if (this.#members.get(link.user) !== m) return;
      this.#members.delete(link.user);
      if (!m.relayOnly) {
        this.opts.events({ event: "disconnected", peer: link.user, address: link.address, reason });
      }
    });
    return true;
  }

  /** Probes the member's round trip now and every RTT_EVERY_MS while the link lasts. */
  #measure(m: LinkedMember): void {
    let prober: RttProber;
    try {
      let told = m.route.rttMs;
      prober = new RttProber(m.mux.open(RTT_PROTOCOL, {}), (_seq, ms) => {
        m.rtt = smoothRtt(m.rtt, ms);
        // Said when it moved noticeably, not at every probe: `status` shows it, logs stay quiet.
        if (Math.abs(m.rtt - told) >= Math.max(RTT_TELL_MS, told * RTT_TELL_SHARE)) {
          told = m.rtt;
          if (this.#members.get(m.user) === m) {
            this.opts.events({ event: "rtt", peer: m.user, rtt_ms: Math.round(m.rtt * 10) / 10 });
          }
        }
      });
    } catch {
      return; // the link ended already
    }
    prober.send();
    const timer = setInterval(() => prober.send(), RTT_EVERY_MS);
    Deno.unrefTimer(timer);
    const stop = () => clearInterval(timer);
    void m.closed.then(stop);
    void prober.ended.then(stop); // an older member that does not echo
  }

  /** Whether `a` should replace `b` (both ends decide alike). */
  #better(a: NetLinkedPeer, b: NetLinkedPeer): boolean {
    const ra = pathRank(a.route.kind as PathKind);
    const rb = pathRank(b.route.kind as PathKind);
    if (ra !== rb) return ra < rb;
    const me = this.opts.user;
    const dialerA = a.direction === "out" ? me : a.user;
    const dialerB = b.direction === "out" ? me : b.user;
    return dialerA < dialerB;
  }

  #route(stream: MuxStream, m: LinkedMember): void {
    const service = this.#services.get(stream.protocol);
    if (service) return service(stream, m);
    if (m.relayOnly) return stream.reset(`a relay opens no "${stream.protocol}" streams`);
    const app = streamApp(this.#apps, stream.protocol, stream.meta);
    if (app) return app.stream?.(stream, m);
    const port = (stream.meta as { port?: unknown } | undefined)?.port;
    stream.reset(
      `nothing here takes "${stream.protocol}" streams${typeof port === "number" ? ` for port ${port}` : ""}`,
    );
  }

  #datagram(channel: number, data: Uint8Array, m: LinkedMember): void {
    if (m.relayOnly) return;
    datagramApp(this.#apps, channel)?.datagram?.(channel, data, m);
  }

  // ─── For the relay service ────────────────────────────────────────────────────────────────

  muxFor(key: Uint8Array): Mux | undefined {
    const id = b64u(key);
    for (const m of this.#members.values()) if (b64u(m.key) === id && !m.mux.isClosed) return m.mux;
    return undefined;
  }

  whenLinked(key: Uint8Array, ms: number): Promise<Mux | undefined> {
    const id = b64u(key);
    return new Promise((resolve) => {
      const waiters = this.#keyWaiters.get(id) ?? new Set();
      this.#keyWaiters.set(id, waiters);
      const done = (mux: Mux | undefined) => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve(mux);
      };
      const timer = setTimeout(() => done(undefined), ms);
      waiters.add(done);
    });
  }

  /** Closes every link (each member sees us leave). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#members.values()].map((m) => m.mux.close()));
    this.#members.clear();
  }
}
