/**
 * Port tunnels over the link (`mailmeet tunnel`): `--expose PORT` on the machine that runs a game
 * or service, `--local PORT` on the other.
 *
 * TCP: every connection to the local port becomes one mux stream ("tunnel"); the exposing side
 * connects it to 127.0.0.1:PORT. Many at once, each with its own flow control.
 *
 * UDP (`--udp`): each source address that sends to the local port is a session; its datagrams
 * ride the mux's datagram channel tagged with a session number, and the exposing side gives each
 * session its own socket connected to 127.0.0.1:PORT, so the service's replies find their way
 * back. Sessions quiet for the idle timeout are dropped on both sides.
 *
 * Only the exposed port is reachable: the exposing side never reads an address or port from the
 * other side; a stream's metadata only picks which of the exposed tunnels takes it.
 *
 * Each exposing tunnel tells every member what it exposes (src/apps/tunnel_services.ts), so the
 * local side finds the member that runs the port without --to, and several tunnels — in one
 * process or in several attached to the same node — share the links, each taking only its port's
 * streams and datagrams.
 *
 * UDP sockets are src/net/udp_port.ts: Deno's own UDP API where --unstable-net is given (the
 * installed command), which receives without an allocation per datagram, and node:dgram where not.
 */
import type { MuxStream } from "../net/mux.ts";
import { openUdpPort, type UdpAddress, type UdpPort } from "../net/udp_port.ts";
import { writeLine } from "../net/line_queue.ts";
import {
  type AppRoute,
  type AppSink,
  type LinkApp,
  type Member,
  type MemberMux,
  pipeConn,
} from "./app_host.ts";
import {
  channelSession,
  datagramChannel,
  encodeServices,
  exposeChannels,
  type ExposedService,
  localChannels,
  MAX_SESSION,
  SERVICES_PROTOCOL,
  TO_LOCAL,
} from "./tunnel_services.ts";

export const TUNNEL_PROTOCOL = "tunnel";
/** A UDP session nobody used for this long is forgotten. */
export const UDP_IDLE_MS = 60_000;
/** A TCP connection that arrives before the service's member is linked waits this long for it. */
export const HOLD_UNLINKED_MS = 15_000;
/** UDP sessions held at once per side; the oldest idle ones go first when full. */
export const MAX_UDP_SESSIONS = 1024;

export interface TunnelOptions {
  port: number;
  udp: boolean;
  emit: AppSink;
  /** Overrides UDP_IDLE_MS (tests). */
  udpIdleMs?: number;
}

interface UdpSession {
  /** The exposing side: the session's own socket, once bound; datagrams wait in backlog until then. */
  port?: UdpPort;
  backlog?: Uint8Array[];
  /** The exposing side: the session was dropped (its socket closes as soon as it is bound). */
  closed?: boolean;
  /** The local side: where replies go. */
  to?: UdpAddress;
  last: number;
}

/** Ends an exposing side's session: its socket now, or once it is bound. */
function endSession(s: UdpSession): void {
  s.closed = true;
  void s.port?.close();
}

/** The side that runs the service: takes streams and datagrams, reaches only 127.0.0.1:port. */
export class TunnelExpose implements LinkApp {
  readonly protocols = [TUNNEL_PROTOCOL];
  readonly route: AppRoute;
  readonly #muxes = new Set<MemberMux>();
  readonly #udp = new Map<MemberMux, Map<number, UdpSession>>();
  readonly #conns = new Set<Promise<unknown>>();
  /** One "services" stream per member: what this tunnel exposes. */
  readonly #told = new Map<Member, MuxStream>();
  #service: ExposedService;
  #sweeper?: ReturnType<typeof setInterval>;
  #connections = 0;
  /** Where the service listens: the only address this side ever sends to. */
  readonly #target: UdpAddress;

  constructor(readonly opts: TunnelOptions & { game?: string; announce?: string }) {
    this.#target = { address: "127.0.0.1", port: opts.port };
    this.route = { meta: { port: opts.port }, channels: opts.udp ? [exposeChannels(opts.port)] : [] };
    this.#service = {
      proto: opts.udp ? "udp" : "tcp",
      port: opts.port,
      ...(opts.game ? { game: opts.game } : {}),
      ...(opts.announce !== undefined ? { announce: opts.announce } : {}),
    };
    if (opts.udp) {
      const idle = opts.udpIdleMs ?? UDP_IDLE_MS;
      this.#sweeper = setInterval(() => this.#sweep(idle), Math.max(50, Math.min(idle / 2, 5000)));
    }
  }

  get connections(): number {
    return this.#connections;
  }

  get service(): ExposedService {
    return this.#service;
  }

  /** The game behind the port and what it announces on this LAN (a new MOTD): members hear it at once. */
  setGame(game: string, announce: string): void {
    if (this.#service.game === game && this.#service.announce === announce) return;
    this.#service = { ...this.#service, game, announce };
    for (const s of this.#told.values()) writeLine(s, encodeServices([this.#service]));
  }

  added(m: Member): void {
    const mux = m.mux;
    this.#muxes.add(mux);
    this.#udp.set(mux, new Map());
    try {
      const s = mux.open(SERVICES_PROTOCOL, {});
      this.#told.set(m, s);
      writeLine(s, encodeServices([this.#service]));
    } catch {
      // the link ended already
    }
    void m.closed.then(() => {
      this.#told.delete(m);
      this.#muxes.delete(mux);
      for (const s of this.#udp.get(mux)?.values() ?? []) endSession(s);
      this.#udp.delete(mux);
    });
  }

  datagram(channel: number, data: Uint8Array, m: Member): void {
    if (this.opts.udp) this.#datagram(m.mux, channel, data);
  }

  stream(stream: MuxStream, m: Member): void {
    const user = m.user;
    if (stream.protocol !== TUNNEL_PROTOCOL || this.opts.udp) {
      stream.reset(
        `this peer exposes ${this.opts.udp ? "UDP" : "TCP"} port ${this.opts.port}, not "${stream.protocol}"`,
      );
      return;
    }
    const task = (async () => {
      let conn: Deno.TcpConn;
      try {
        conn = await Deno.connect({ hostname: "127.0.0.1", port: this.opts.port });
      } catch (err) {
        const why = `nothing answers on port ${this.opts.port} (${(err as Error).message})`;
        this.opts.emit({ event: "tunnel_refused", peer: user, reason: why });
        stream.reset(why);
        return;
      }
      conn.setNoDelay(true);
      this.#connections++;
      this.opts.emit({ event: "tunnel_open", peer: user, port: this.opts.port, open: this.#connections });
      const reason = await pipeConn(conn, stream);
      this.#connections--;
      this.opts.emit({ event: "tunnel_closed", peer: user, open: this.#connections, reason });
    })();
    this.#conns.add(task);
    void task.finally(() => this.#conns.delete(task));
  }

  #datagram(mux: MemberMux, channel: number, data: Uint8Array): void {
    const sessions = this.#udp.get(mux);
    if (!sessions) return;
    let s = sessions.get(channel);
    if (!s) {
      if (sessions.size >= MAX_UDP_SESSIONS) evictOldest(sessions);
      const session: UdpSession = { last: Date.now(), backlog: [] };
      s = session;
      sessions.set(channel, session);
      const back = (channel | TO_LOCAL) >>> 0;
      const service = this.#target;
      void openUdpPort({
        hostname: service.address,
        port: 0,
        onMessage: (msg, from) => {
          // As a connected socket would: only the service's replies come back.
          if (from.port !== service.port || from.address !== service.address) return;
          session.last = Date.now();
          // A copy: the view is of the socket's one receive buffer, and the mux may queue it.
          mux.sendDatagram(back, msg.slice());
        },
      }).then((port) => {
        if (session.closed) return void port.close();
        session.port = port;
        for (const d of session.backlog!) port.send(d, service);
        session.backlog = [];
      }, () => {
        session.backlog = []; // no socket to be had: this session's datagrams are lost, as UDP's may be
      });
      this.opts.emit({
        event: "udp_session",
        peer: mux.peer,
        session: channelSession(channel),
        open: sessions.size,
      });
    }
    s.last = Date.now();
    if (s.port) s.port.send(data.slice(), this.#target);
    else if (!s.closed && s.backlog!.length < 64) s.backlog!.push(data.slice());
  }

  #sweep(idleMs: number): void {
    const now = Date.now();
    for (const sessions of this.#udp.values()) {
      for (const [ch, s] of sessions) {
        if (now - s.last > idleMs) {
          endSession(s);
          sessions.delete(ch);
        }
      }
    }
  }

  /** Call after the node stopped (its links closing ends every connection). */
  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    for (const s of this.#told.values()) s.closeWrite();
    for (const sessions of this.#udp.values()) for (const s of sessions.values()) endSession(s);
    await Promise.allSettled([...this.#conns]);
  }
}

/** The member a local tunnel carries to, and its port there. */
export interface TunnelTarget {
  user: string;
  mux: MemberMux;
  /** The port there; undefined: a member named by --to that told nothing yet (it takes the stream anyway). */
  port?: number;
  /** What the member told of the service (undefined: it told nothing, an older peer named by --to). */
  service?: ExposedService;
}

export interface TunnelLocalOptions extends TunnelOptions {
  /** The port on the exposing side; undefined: whichever port a member exposes (the first). */
  remote?: number;
  /** Where the local port listens (default 127.0.0.1; 0.0.0.0 offers it to the LAN). */
  bind?: string;
  /** Only this member; otherwise the one that exposes the port. */
  to?: string;
  /**
   * A UDP datagram from a program here that the tunnel answers itself (a LAN browser's query the
   * member told the answer to: src/apps/lan/); undefined: it goes through the tunnel.
   */
  answer?: (datagram: Uint8Array, target: TunnelTarget, localPort: number) => Uint8Array | undefined;
}

/** The side users connect to: a local TCP listener or UDP socket, carried to one peer. */
export class TunnelLocal implements LinkApp {
  readonly route: AppRoute;
  readonly #members: Member[] = [];
  readonly #conns = new Set<Promise<unknown>>();
  #listener?: Deno.TcpListener;
  #udpPort?: UdpPort;
  /** source "ip:port" → session number, and back. */
  readonly #bySource = new Map<string, number>();
  readonly #sessions = new Map<number, UdpSession>();
  #nextSession = 1;
  #sweeper?: ReturnType<typeof setInterval>;
  #accepting?: Promise<void>;
  #connections = 0;
  #linkWaiters: (() => void)[] = [];
  #shown?: string;

  constructor(readonly opts: TunnelLocalOptions) {
    this.route = { channels: opts.udp ? [localChannels(opts.remote)] : [] };
  }

  /** Where the local side listens (port 0 in the options picks one). */
  get port(): number {
    if (this.#listener) return this.#listener.addr.port;
    return this.#udpPort?.port ?? this.opts.port;
  }

  get bind(): string {
    return this.opts.bind ?? "127.0.0.1";
  }

  async start(): Promise<void> {
    const hostname = this.bind;
    if (!this.opts.udp) {
      this.#listener = Deno.listen({ hostname, port: this.opts.port });
      this.#accepting = this.#accept(this.#listener);
      return;
    }
    this.#udpPort = await openUdpPort({
      hostname,
      port: this.opts.port,
      onMessage: (msg, from) => this.#fromLocal(msg, from),
    });
    const idle = this.opts.udpIdleMs ?? UDP_IDLE_MS;
    this.#sweeper = setInterval(() => {
      const now = Date.now();
      for (const [ch, s] of this.#sessions) {
        if (now - s.last > idle) {
          this.#sessions.delete(ch);
          this.#bySource.delete(`${s.to!.address}:${s.to!.port}`);
        }
      }
    }, Math.max(50, Math.min(idle / 2, 5000)));
  }

  added(m: Member): void {
    this.#members.push(m);
    void m.closed.then(() => {
      const i = this.#members.indexOf(m);
      if (i >= 0) this.#members.splice(i, 1);
      this.#changed();
    });
    this.#changed();
  }

  servicesChanged(): void {
    this.#changed();
  }

  datagram(channel: number, data: Uint8Array): void {
    this.#fromPeer(channel, data);
  }

  /**
   * Who carries the tunnel: a member that exposes the port (with --to, only that one; an older
   * peer named by --to that tells nothing is taken at its word), the lowest round trip first.
   */
  target(): TunnelTarget | undefined {
    const { to, remote, udp } = this.opts;
    const proto = udp ? "udp" : "tcp";
    const found: TunnelTarget[] = [];
    for (const m of this.#members) {
      if (m.mux.isClosed || (to !== undefined && m.user !== to)) continue;
      const service = m.services.find((s) =>
        s.proto === proto && (remote === undefined || s.port === remote)
      );
      if (service) found.push({ user: m.user, mux: m.mux, port: service.port, service });
      else if (to !== undefined && m.services.length === 0) {
        found.push({ user: m.user, mux: m.mux, ...(remote !== undefined ? { port: remote } : {}) });
      }
    }
    found.sort((a, b) =>
      Number(!a.service) - Number(!b.service) || rtt(a, this.#members) - rtt(b, this.#members)
    );
    return found[0];
  }

  /** Members or what they expose changed: wake held connections, say where the tunnel goes now. */
  #changed(): void {
    const t = this.target();
    const shown = t ? `${t.user}:${t.port ?? "?"}` : undefined;
    if (shown !== this.#shown) {
      this.#shown = shown;
      if (t?.port !== undefined) {
        this.opts.emit({
          event: "tunnel_target",
          peer: t.user,
          port: t.port,
          proto: this.opts.udp ? "UDP" : "TCP",
          ...(t.service?.game ? { game: t.service.game } : {}),
        });
      }
    }
    this.onTarget?.(t);
    if (!t) return;
    const waiting = this.#linkWaiters;
    this.#linkWaiters = [];
    for (const w of waiting) w();
  }

  /** Called whenever members or their services change, with the target (LAN announcers follow it). */
  onTarget?: (t: TunnelTarget | undefined) => void;

  async #waitForTarget(ms: number): Promise<TunnelTarget | undefined> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const t = this.target();
      if (t) return t;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, until - Date.now());
        this.#linkWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.target();
  }

  /** Why target() found nobody, in words. */
  whyNoTarget(): string {
    const { to, remote, udp } = this.opts;
    const what = `${udp ? "UDP" : "TCP"} port ${remote ?? "(any)"}`;
    if (to !== undefined) {
      return this.#members.some((m) => m.user === to)
        ? `${to} does not expose ${what}`
        : `not linked to ${to}`;
    }
    return this.#members.length === 0 ? "no peer linked yet" : `no linked member exposes ${what}`;
  }

  async #accept(listener: Deno.TcpListener): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return; // closed
      }
      conn.setNoDelay(true);
      const task = (async () => {
        // A game may connect before its member is linked (it is being reached): hold it a while.
        const t = this.target() ?? await this.#waitForTarget(HOLD_UNLINKED_MS);
        if (!t) {
          this.opts.emit({ event: "tunnel_refused", reason: this.whyNoTarget() });
          conn.close();
          return;
        }
        // No port known (a member named by --to that told nothing): its one tunnel takes it.
        const stream = t.mux.open(TUNNEL_PROTOCOL, t.port !== undefined ? { port: t.port } : {});
        this.#connections++;
        this.opts.emit({ event: "tunnel_open", peer: t.user, port: this.port, open: this.#connections });
        const reason = await pipeConn(conn, stream);
        this.#connections--;
        this.opts.emit({ event: "tunnel_closed", peer: t.user, open: this.#connections, reason });
      })();
      this.#conns.add(task);
      void task.finally(() => this.#conns.delete(task));
    }
  }

  /** A datagram from a program here; `msg` is valid during the call only. */
  #fromLocal(msg: Uint8Array, from: UdpAddress): void {
    const t = this.target();
    // Datagrams need the port for their channel: until the member says it, they are lost (as UDP may be).
    if (t?.port === undefined) return;
    const answer = this.opts.answer?.(msg, t, this.port);
    if (answer) return void this.#udpPort?.send(answer, from);
    const key = `${from.address}:${from.port}`;
    let ch = this.#bySource.get(key);
    if (ch === undefined) {
      if (this.#sessions.size >= MAX_UDP_SESSIONS) {
        const oldest = evictOldest(this.#sessions);
        if (oldest) this.#bySource.delete(`${oldest.to!.address}:${oldest.to!.port}`);
      }
      ch = this.#newSession();
      this.#bySource.set(key, ch);
      this.#sessions.set(ch, { to: { address: from.address, port: from.port }, last: Date.now() });
      this.opts.emit({
        event: "udp_session",
        peer: t.user,
        session: ch,
        source: key,
        open: this.#sessions.size,
      });
    }
    this.#sessions.get(ch)!.last = Date.now();
    // A copy: the view is of the socket's one receive buffer, and the mux may queue it.
    t.mux.sendDatagram(datagramChannel(t.port, false, ch), msg.slice());
  }

  /** A session number not in use (they fit in 15 bits of the channel). */
  #newSession(): number {
    for (;;) {
      const ch = this.#nextSession;
      this.#nextSession = ch >= MAX_SESSION ? 1 : ch + 1;
      if (!this.#sessions.has(ch)) return ch;
    }
  }

  #fromPeer(channel: number, data: Uint8Array): void {
    const s = this.#sessions.get(channelSession(channel));
    if (!s || !this.#udpPort) return;
    s.last = Date.now();
    this.#udpPort.send(data.slice(), s.to!);
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    try {
      this.#listener?.close();
    } catch {
      // already closed
    }
    await this.#accepting;
    await this.#udpPort?.close();
    await Promise.allSettled([...this.#conns]);
  }
}

function rtt(t: TunnelTarget, members: readonly Member[]): number {
  return members.find((m) => m.mux === t.mux)?.route.rttMs ?? Infinity;
}

function evictOldest(sessions: Map<number, UdpSession>): UdpSession | undefined {
  let oldest: [number, UdpSession] | undefined;
  for (const e of sessions) if (!oldest || e[1].last < oldest[1].last) oldest = e;
  if (!oldest) return undefined;
  endSession(oldest[1]);
  sessions.delete(oldest[0]);
  return oldest[1];
}
