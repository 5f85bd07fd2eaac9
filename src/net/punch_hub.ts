/**
 * A node's UDP presence: one long-lived socket whose public address (learned by STUN, kept open by
 * refreshing it) travels in the sealed mail, and the punch sessions that turn it into QUIC links.
 *
 * A session with one member runs in two stages:
 *  1. Signalling path. Probes between our published socket and the member's (src/net/punch.ts)
 *     until one path answers both ways. It carries only small sealed signals.
 *  2. Data path. Each side binds a fresh socket for this member alone and tells the other its
 *     addresses over the signalling path ("offer"); the two punch again, now in step. The side with
 *     the smaller link key becomes the QUIC server: it closes its raw socket, binds a QUIC endpoint
 *     to the same port and says "use" with the address the other should connect to; the other does
 *     the same and connects. The published socket stays free for everyone else, and every QUIC link
 *     owns its port and NAT mapping (QUIC itself is Rust code that moves bulk data far faster than
 *     a user-space relay of datagrams could).
 * A symmetric NAT on either side changes only how addresses are found: many sockets on that side,
 * random guesses on the other (PunchAttempt). Two symmetric NATs cannot be punched: the caller
 * goes through a relay instead.
 *
 * Packets that open with the punch key and name us are answered even with no session (a member
 * who learned our address from a host probes us before any introduction reaches us); an "offer"
 * from a member we have no session with starts one, and its result goes to `onInbound`.
 */
import { b64u, fromB64u, type Random, systemRandom } from "../protocol/bytes.ts";
import {
  type Candidate,
  decodeCandidates,
  decodeMapping,
  encodeCandidates,
  isIPv4,
  type MappingBehaviour,
} from "../protocol/candidate.ts";
import type { NetworkKey } from "../protocol/keys.ts";
import {
  decodePunch,
  encodePunch,
  isPunchPacket,
  PUNCH_SESSION_BYTES,
  type PunchPacket,
} from "../protocol/punch.ts";
import { type InterfaceAddress, systemInterfaces, usableAddresses } from "./interfaces.ts";
import {
  formatHp,
  parseHp,
  PunchAttempt,
  type PunchedPath,
  type PunchSocket,
  type PunchTarget,
  TICK_MS,
} from "./punch.ts";
import { acceptQuic, connectQuic, quicAvailable, type QuicByteStream } from "./quic.ts";
import { quicIdentity } from "./quic_identity.ts";
import { type HostPort, mappingBehaviour, StunClient } from "./stun.ts";
import { type Datagram, UdpSocket } from "./udp.ts";

/** Sockets a symmetric-NAT side probes from (see PunchAttempt for the odds). */
export const SPRAY_SOCKETS = 256;
/** Packets older or newer than this (by the sender's clock) are dropped: replays go nowhere. */
export const PUNCH_MAX_SKEW_MS = 120_000;
/** Re-ask STUN this often: keeps the published mapping alive (home routers drop idle UDP after ~30 s+). */
export const STUN_REFRESH_MS = 25_000;
/** A signal is sent again until the other side says it got it. */
const SIGNAL_RETRY_MS = 250;
/** How long the QUIC handshake may take once both data sockets are punched. */
const QUIC_CONNECT_MS = 8_000;

/** What a member published about its UDP reachability (from the sealed mail). */
export interface RemoteReach {
  candidates: readonly Candidate[];
  mapping: MappingBehaviour;
}

/** A QUIC stream to a member, ready for the Noise handshake. */
export interface PunchResult {
  stream: QuicByteStream;
  /** The member's link public key. */
  remoteKey: Uint8Array;
  /** "client" runs the Noise initiator (it knows the other's key from mail or the packets). */
  role: "client" | "server";
  kind: PunchedPath["kind"];
  remote: HostPort;
}

export interface HubEvent {
  event: "punch";
  peer: string;
  stage: string;
  detail?: string;
}

export interface PunchHubOptions {
  networkKey: NetworkKey;
  /** Our link public key for this run. */
  localKey: Uint8Array;
  /** Resolved STUN servers (none: no public address is learned, LAN and relays still work). */
  stun: readonly HostPort[];
  /** Preferred port for the published socket (the TCP listener's, so one forwarded port serves both). */
  port?: number;
  host?: string;
  /** A punch session we did not start (the other member dialled us) produced a QUIC stream. */
  onInbound?: (r: PunchResult) => void;
  /** Our public address or mapping changed: the node tells its hosts again. */
  onChange?: () => void;
  log?: (e: HubEvent) => void;
  interfaces?: () => InterfaceAddress[];
  clock?: () => number;
  random?: Random;
}

interface Pending {
  body: Record<string, unknown>;
  next: number;
}

class Session {
  readonly id: string;
  readonly lo: boolean;
  stage1?: PunchAttempt;
  stage1Sockets: UdpSocket[] = [];
  signalPath?: { socket: PunchSocket; remote: HostPort };
  data?: { sockets: UdpSocket[]; candidates: Candidate[]; mapping: MappingBehaviour; guess: string[] };
  stage2?: PunchAttempt;
  theirOffer?: { candidates: Candidate[]; mapping: MappingBehaviour; guess: string[] };
  offerSent = false;
  useSent = false;
  quicStarted = false;
  /** A connect() call waits for this session's path (at most one may: see connect()). */
  claimed = false;
  readonly result = Promise.withResolvers<PunchResult>();
  #signalId = 0;
  readonly pending = new Map<number, Pending>();
  readonly seenSignals = new Set<number>();
  finished = false;

  constructor(
    readonly remoteKey: Uint8Array,
    localKey: Uint8Array,
    readonly deadline: number,
    readonly active: boolean,
  ) {
    this.id = b64u(remoteKey);
    this.lo = compareBytes(localKey, remoteKey) < 0;
    this.result.promise.catch(() => {});
  }

  nextSignalId(): number {
    return ++this.#signalId;
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export class PunchHub {
  readonly #o: PunchHubOptions;
  readonly #socket: UdpSocket;
  readonly #stun: StunClient;
  readonly #random: Random;
  readonly #clock: () => number;
  readonly #sessions = new Map<string, Session>();
  /** Our own session id for stateless acks from the published socket. */
  readonly #statelessSession: Uint8Array;
  #timer?: ReturnType<typeof setInterval>;
  #refresh?: ReturnType<typeof setInterval>;
  #closed = false;
  #public?: HostPort;
  #mapping: MappingBehaviour = "unknown";

  private constructor(opts: PunchHubOptions, socket: UdpSocket) {
    this.#o = opts;
    this.#socket = socket;
    this.#random = opts.random ?? systemRandom;
    this.#clock = opts.clock ?? Date.now;
    this.#statelessSession = this.#random(PUNCH_SESSION_BYTES);
    this.#stun = new StunClient((d, h, p) => socket.send(d, h, p));
    socket.onMessage((d, s) => this.#dispatch(d, s));
  }

  /** Binds the published socket (the preferred port if free, else any) and asks STUN where it is. */
  static async open(opts: PunchHubOptions): Promise<PunchHub> {
    let socket: UdpSocket;
    try {
      socket = await UdpSocket.bind({ host: opts.host ?? "0.0.0.0", port: opts.port ?? 0 });
    } catch {
      socket = await UdpSocket.bind({ host: opts.host ?? "0.0.0.0", port: 0 });
    }
    const hub = new PunchHub(opts, socket);
    await hub.refresh();
    if (opts.stun.length > 0) {
      hub.#refresh = setInterval(() => void hub.refresh(true), STUN_REFRESH_MS);
      Deno.unrefTimer(hub.#refresh);
    }
    return hub;
  }

  get port(): number {
    return this.#socket.port;
  }

  /** Our public address as STUN saw it (undefined without STUN, or when nobody answered). */
  get publicAddress(): HostPort | undefined {
    return this.#public;
  }

  get mapping(): MappingBehaviour {
    return this.#mapping;
  }

  get quic(): boolean {
    return quicAvailable();
  }

  /** Asks the STUN servers again; tells onChange when the answer moved. */
  async refresh(notify = false): Promise<void> {
    if (this.#o.stun.length === 0 || this.#closed) return;
    const answers = await this.#stun.probe(this.#o.stun);
    const first = answers.find((a) => a !== undefined);
    const mapping = this.#o.stun.length >= 2 ? mappingBehaviour(answers) : first ? "eim" : "unknown";
    const moved = first?.host !== this.#public?.host || first?.port !== this.#public?.port ||
      (first !== undefined && mapping !== this.#mapping);
    if (first) {
      this.#public = first;
      this.#mapping = mapping === "unknown" && answers.filter(Boolean).length === 1 ? this.#mapping : mapping;
    }
    if (notify && moved && first) this.#o.onChange?.();
  }

  /** The UDP candidates of the published socket. */
  candidates(): Candidate[] {
    return this.#candidatesFor(this.#socket.port, this.#public);
  }

  /**
   * Punches towards a member and resolves with a QUIC stream (or rejects when `deadline` passes).
   * Joins a session already running with that member (both sides dial each other at once).
   */
  connect(
    remoteKey: Uint8Array,
    reach: RemoteReach,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<PunchResult> {
    if (this.#closed) return Promise.reject(new Error("The UDP hub is closed."));
    if (!quicAvailable()) {
      return Promise.reject(new Error("QUIC needs --unstable-net; punched UDP paths are off."));
    }
    const id = b64u(remoteKey);
    let s = this.#sessions.get(id);
    if (s && !s.finished) {
      // A punched path is one QUIC stream: it can carry one handshake. A second dial sharing it
      // ran its own handshake over the same stream, and both failed (the NAT lab saw it when the
      // host's introduction and a member's word over a link came at once): refuse it instead.
      if (s.claimed) {
        return Promise.reject(
          new Error("Already punching to this member; the dial that started first gets the path."),
        );
      }
      s.claimed = true;
      this.#startStage1(s, reach);
      return s.result.promise;
    }
    s = new Session(remoteKey, this.#o.localKey, deadline, true);
    s.claimed = true;
    this.#sessions.set(id, s);
    const session = s;
    // Another path won, or the dial gave up: stop, and tell the other side why so it stops too.
    signal?.addEventListener("abort", () => this.#cancel(session, abortReason(signal)), { once: true });
    this.#startStage1(s, reach);
    void this.#prepareData(s);
    this.#ensureTimer();
    return s.result.promise;
  }

  #cancel(s: Session, why: string): void {
    if (s.finished || s.quicStarted) return;
    if (s.signalPath) {
      this.#sendPacket(s.signalPath.socket, s.signalPath.remote, s.remoteKey, "signal", {
        t: "fail",
        i: 0,
        r: why,
      });
    }
    this.#finish(s, new Error(why));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    clearInterval(this.#refresh);
    for (const s of this.#sessions.values()) this.#finish(s, new Error("The node is stopping."));
    await this.#socket.close();
  }

  // ─── Sessions ─────────────────────────────────────────────────────────────────────────────

  #startStage1(s: Session, reach: RemoteReach): void {
    if (s.stage1 || s.finished) return;
    const targets: PunchTarget[] = reach.candidates
      .filter((c) => c.transport === "udp" && isIPv4(c.host))
      .map((c) => ({ host: c.host, port: c.port, kind: c.kind }));
    if (targets.length === 0) return; // we wait to be probed (our own candidates went out by mail)
    const weSym = this.#mapping === "symmetric";
    const theySym = reach.mapping === "symmetric";
    if (weSym && theySym) {
      this.#finish(s, new Error("both sides are behind symmetric NATs: no punched path exists"));
      return;
    }
    const guess = theySym
      ? [...new Set(reach.candidates.filter((c) => c.kind === "public").map((c) => c.host))]
      : [];
    const start = (sockets: PunchSocket[]) => {
      if (s.finished) return;
      s.stage1 = new PunchAttempt({
        key: this.#o.networkKey.punchKey,
        localKey: this.#o.localKey,
        remoteKey: s.remoteKey,
        sockets,
        targets,
        guessHosts: guess,
        random: this.#random,
        clock: this.#clock,
      });
      this.#log(s, "probing", `${targets.length} address(es)${guess.length ? ", guessing ports" : ""}`);
      s.stage1.confirmed.then((path) => {
        this.#log(s, "signal path", `${formatHp(path.remote)} (${path.kind})`);
        s.signalPath ??= { socket: path.socket, remote: path.remote };
        // A sprayed side keeps its other sockets for now: the other side confirmed the first path
        // *it* saw, which may end at another of them, and sends its signals there. Its first
        // signal picks the one to keep (#onSignal). Closing them here lost the other side's offer
        // whenever the two picks differed, and the pair went through a relay (1 run in 10 of the
        // lab's "behind carrier-grade NAT" test).
        this.#maybeOffer(s);
      }, () => {});
    };
    if (!weSym) start([this.#socket]);
    else {
      void this.#spray().then((sockets) => {
        if (s.finished) return void Promise.all(sockets.map((k) => k.close()));
        s.stage1Sockets = sockets;
        for (const k of sockets) k.onMessage((d, sock) => this.#dispatch(d, sock));
        start(sockets);
      });
    }
  }

  /** Binds the data socket(s) for this member alone and learns their public address. */
  async #prepareData(s: Session): Promise<void> {
    const sym = this.#mapping === "symmetric";
    const sockets = sym ? await this.#spray() : [await UdpSocket.bind({ host: this.#o.host ?? "0.0.0.0" })];
    if (s.finished) {
      await Promise.all(sockets.map((k) => k.close()));
      return;
    }
    for (const k of sockets) k.onMessage((d, sock) => this.#dispatch(d, sock));
    let pub: HostPort | undefined;
    if (!sym && this.#o.stun.length > 0) {
      const stun = new StunClient((d, h, p) => sockets[0].send(d, h, p));
      this.#stunClients.set(sockets[0], stun);
      pub = (await stun.probe(this.#o.stun.slice(0, 1), 1000))[0];
      this.#stunClients.delete(sockets[0]);
    }
    if (s.finished) {
      await Promise.all(sockets.map((k) => k.close()));
      return;
    }
    s.data = {
      sockets,
      candidates: this.#candidatesFor(sockets[0].port, pub),
      mapping: sym ? "symmetric" : this.#mapping,
      guess: sym && this.#public ? [this.#public.host] : [],
    };
    this.#maybeOffer(s);
  }

  readonly #stunClients = new Map<UdpSocket, StunClient>();

  #maybeOffer(s: Session): void {
    if (s.finished || !s.signalPath || !s.data) return;
    if (!s.offerSent) {
      s.offerSent = true;
      this.#signal(s, {
        t: "offer",
        c: encodeCandidates(s.data.candidates),
        m: s.data.mapping,
        g: s.data.guess,
      });
    }
    this.#maybeStage2(s);
  }

  #maybeStage2(s: Session): void {
    if (s.finished || s.stage2 || !s.data || !s.theirOffer || !s.offerSent) return;
    const o = s.theirOffer;
    if (o.mapping === "symmetric" && s.data.mapping === "symmetric") {
      this.#finish(s, new Error("both sides are behind symmetric NATs: no punched path exists"));
      return;
    }
    s.stage2 = new PunchAttempt({
      key: this.#o.networkKey.punchKey,
      localKey: this.#o.localKey,
      remoteKey: s.remoteKey,
      sockets: s.data.sockets,
      targets: o.candidates.filter((c) => c.transport === "udp" && isIPv4(c.host)).map((c) => ({
        host: c.host,
        port: c.port,
        kind: c.kind,
      })),
      guessHosts: o.mapping === "symmetric" ? o.guess : [],
      random: this.#random,
      clock: this.#clock,
    });
    this.#log(s, "data punch", `${o.candidates.length} address(es)`);
    s.stage2.confirmed.then((path) => {
      this.#log(s, "data path", `${formatHp(path.remote)} (${path.kind})`);
      if (s.lo) void this.#serve(s, path);
    }, () => {});
  }

  /** The QUIC server side: our punched data socket's port becomes a QUIC endpoint. */
  async #serve(s: Session, path: PunchedPath): Promise<void> {
    if (s.quicStarted || s.finished) return;
    s.quicStarted = true;
    const sock = path.socket as UdpSocket;
    const others = s.data!.sockets.filter((k) => k !== sock);
    await Promise.all([...others.map((k) => k.close()), sock.close()]);
    s.stage2?.stop();
    try {
      const stream = await acceptQuic(
        sock.port,
        quicIdentity(this.#o.networkKey.secret),
        path.remote,
        Math.max(1000, Math.min(QUIC_CONNECT_MS, s.deadline - this.#clock())),
        () => {
          s.useSent = true;
          this.#signal(s, {
            t: "use",
            s: b64u(path.remoteSession),
            a: path.seenAs ? formatHp(path.seenAs) : "",
          });
        },
      );
      this.#succeed(s, {
        stream,
        remoteKey: s.remoteKey,
        role: "server",
        kind: path.kind,
        remote: path.remote,
      });
    } catch (err) {
      this.#finish(s, err as Error);
    }
  }

  /** The QUIC client side, on the other's "use". */
  async #use(s: Session, body: Record<string, unknown>): Promise<void> {
    if (s.quicStarted || s.finished || !s.data) return;
    const session = typeof body.s === "string" ? fromB64u(body.s) : undefined;
    const remote = parseHp(body.a);
    const sock = session && s.stage2
      ? s.data.sockets.find((k) => {
        const mine = s.stage2!.sessionOf(k);
        return mine !== undefined && b64u(mine) === b64u(session);
      })
      : undefined;
    if (!sock || !remote) {
      this.#finish(s, new Error("the other side chose a data path we do not know"));
      return;
    }
    s.quicStarted = true;
    s.stage2?.stop();
    const kind = s.theirOffer?.candidates.find((c) => c.host === remote.host && c.port === remote.port)?.kind;
    await Promise.all(s.data.sockets.map((k) => k.close()));
    try {
      const stream = await connectQuic(
        sock.port,
        quicIdentity(this.#o.networkKey.secret),
        remote,
        Math.max(1000, Math.min(QUIC_CONNECT_MS, s.deadline - this.#clock())),
      );
      this.#succeed(s, {
        stream,
        remoteKey: s.remoteKey,
        role: "client",
        kind: kind === undefined || kind === "public" ? "punched" : kind,
        remote,
      });
    } catch (err) {
      this.#finish(s, err as Error);
    }
  }

  #succeed(s: Session, r: PunchResult): void {
    if (s.finished) {
      r.stream.close();
      return;
    }
    this.#log(s, "quic", `${r.role} ${formatHp(r.remote)}`);
    if (!s.active) {
      this.#cleanup(s);
      this.#o.onInbound?.(r);
      return;
    }
    s.result.resolve(r);
    this.#cleanup(s);
  }

  #finish(s: Session, err: Error): void {
    if (s.finished) return;
    this.#log(s, "failed", err.message);
    s.result.reject(err);
    this.#cleanup(s);
  }

  #cleanup(s: Session): void {
    s.finished = true;
    s.stage1?.stop();
    s.stage2?.stop();
    for (const k of s.stage1Sockets) void k.close();
    if (!s.quicStarted) { for (const k of s.data?.sockets ?? []) void k.close(); }
    if (this.#sessions.get(s.id) === s) this.#sessions.delete(s.id);
  }

  // ─── Signals over the signalling path ─────────────────────────────────────────────────────

  #signal(s: Session, body: Record<string, unknown>): void {
    const id = s.nextSignalId();
    const entry = { body: { ...body, i: id }, next: 0 };
    s.pending.set(id, entry);
    this.#resendSignals(s);
  }

  #resendSignals(s: Session): void {
    if (!s.signalPath) return;
    const now = this.#clock();
    for (const p of s.pending.values()) {
      if (p.next > now) continue;
      p.next = now + SIGNAL_RETRY_MS;
      this.#sendPacket(s.signalPath.socket, s.signalPath.remote, s.remoteKey, "signal", p.body);
    }
  }

  #onSignal(s: Session, p: PunchPacket, from: HostPort, socket: PunchSocket): void {
    const id = p.body.i;
    if (p.body.t === "got") {
      if (typeof id === "number") s.pending.delete(id);
      return;
    }
    if (typeof id !== "number") return;
    if (s.stage1Sockets.length > 1 && s.stage1Sockets.includes(socket as UdpSocket)) {
      // The socket of our spray the other side signals to: ours too from now on, and the rest of
      // the spray can go (file descriptors are not free).
      s.signalPath = { socket, remote: from };
      for (const k of s.stage1Sockets) if (k !== socket) void k.close();
      s.stage1Sockets = [socket as UdpSocket];
    }
    // The other side reached us: whatever path it used answers, so it is a signalling path too.
    s.signalPath ??= { socket, remote: from };
    this.#sendPacket(socket, from, s.remoteKey, "signal", { t: "got", i: id });
    if (s.seenSignals.has(id)) return;
    s.seenSignals.add(id);
    switch (p.body.t) {
      case "offer":
        try {
          s.theirOffer = {
            candidates: decodeCandidates(p.body.c),
            mapping: decodeMapping(p.body.m),
            guess: Array.isArray(p.body.g)
              ? p.body.g.filter((h): h is string => typeof h === "string" && isIPv4(h)).slice(0, 4)
              : [],
          };
        } catch {
          this.#finish(s, new Error("the other side sent an offer we cannot read"));
          return;
        }
        this.#maybeOffer(s);
        break;
      case "use":
        if (!s.lo) void this.#use(s, p.body);
        break;
      case "fail":
        this.#finish(s, new Error(`the other side gave up: ${String(p.body.r ?? "no reason")}`));
        break;
    }
  }

  // ─── Packets ──────────────────────────────────────────────────────────────────────────────

  #dispatch(d: Datagram, socket: UdpSocket): void {
    const stun = socket === this.#socket ? this.#stun : this.#stunClients.get(socket);
    if (stun?.handle(d)) return;
    if (!isPunchPacket(d.data)) return;
    let p: PunchPacket;
    try {
      p = decodePunch(this.#o.networkKey.punchKey, d.data);
    } catch {
      return; // not a member, or damaged: silence
    }
    if (b64u(p.to) !== b64u(this.#o.localKey)) return;
    if (Math.abs(p.time - this.#clock()) > PUNCH_MAX_SKEW_MS) return;
    const from = { host: d.host, port: d.port };
    const id = b64u(p.from);
    let s = this.#sessions.get(id);
    if (!s || s.finished) {
      if (socket !== this.#socket) return;
      if (p.type === "probe") {
        // Answer members who probe us before we know of them: their side of the punch completes,
        // and they go on to signal us.
        this.#ackProbe(socket, from, p);
        return;
      }
      if (p.type !== "signal" || p.body.t !== "offer" || !quicAvailable() || this.#closed) return;
      s = new Session(p.from, this.#o.localKey, this.#clock() + 30_000, false);
      this.#sessions.set(id, s);
      s.signalPath = { socket, remote: from };
      this.#log(s, "inbound", formatHp(from));
      void this.#prepareData(s);
      this.#ensureTimer();
    }
    if (p.type === "signal") {
      this.#onSignal(s, p, from, socket);
      return;
    }
    if (s.stage2 && s.data?.sockets.includes(socket)) s.stage2.receive(p, from, socket);
    else if (s.stage1 && (socket === this.#socket || s.stage1Sockets.includes(socket))) {
      s.stage1.receive(p, from, socket);
    } else if (socket === this.#socket && p.type === "probe") {
      this.#ackProbe(socket, from, p);
    }
  }

  /** Acks a probe outside any session of ours, telling the prober the address it came from. */
  #ackProbe(socket: UdpSocket, from: HostPort, p: PunchPacket): void {
    this.#sendPacket(
      socket,
      from,
      p.from,
      "ack",
      { e: b64u(p.session), s: formatHp(from) },
      this.#statelessSession,
    );
  }

  #sendPacket(
    socket: PunchSocket,
    to: HostPort,
    remoteKey: Uint8Array,
    type: "probe" | "ack" | "signal",
    body: Record<string, unknown>,
    session: Uint8Array = this.#statelessSession,
  ): void {
    socket.send(
      encodePunch(this.#o.networkKey.punchKey, {
        type,
        from: this.#o.localKey,
        to: remoteKey,
        session,
        time: this.#clock(),
        body,
      }, this.#random),
      to.host,
      to.port,
    );
  }

  #ensureTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  #tick(): void {
    const now = this.#clock();
    for (const s of [...this.#sessions.values()]) {
      if (s.finished) continue;
      if (now > s.deadline) {
        this.#cancel(s, "no UDP path answered in time");
        continue;
      }
      s.stage1?.tick();
      s.stage2?.tick();
      this.#resendSignals(s);
    }
    if (this.#sessions.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  async #spray(): Promise<UdpSocket[]> {
    const host = this.#o.host ?? "0.0.0.0";
    const bound = await Promise.allSettled(
      Array.from({ length: SPRAY_SOCKETS }, () => UdpSocket.bind({ host })),
    );
    // Out of file descriptors or ports: fewer sockets, lower odds.
    return bound.flatMap((b) => b.status === "fulfilled" ? [b.value] : []);
  }

  #candidatesFor(port: number, pub: HostPort | undefined): Candidate[] {
    const list: Candidate[] = [];
    const ifaces = usableAddresses((this.#o.interfaces ?? systemInterfaces)()).filter((a) =>
      a.family === "IPv4"
    );
    for (const a of ifaces) {
      const isPublic = pub !== undefined && a.address === pub.host;
      list.push({ kind: isPublic ? "public" : "lan", transport: "udp", host: a.address, port });
    }
    if (pub && !list.some((c) => c.host === pub.host && c.port === pub.port)) {
      list.push({ kind: "public", transport: "udp", host: pub.host, port: pub.port });
    }
    return list;
  }

  #log(s: Session, stage: string, detail?: string): void {
    this.#o.log?.({ event: "punch", peer: s.id.slice(0, 8), stage, detail });
  }
}

/** What the dialler said when it stopped a punch (connector.ts passes an Error with the reason). */
function abortReason(signal: AbortSignal): string {
  const r = signal.reason;
  if (r instanceof Error && !(r instanceof DOMException)) return r.message;
  return typeof r === "string" ? r : "the dial was cancelled";
}
