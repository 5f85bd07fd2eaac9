/**
 * Where apps attach to the node (AppHost), and what they see of its links: members, each with one
 * multiplexer the node put on its link, and the LinkApp shape an app takes to receive its protocol's streams and hear who comes and goes.
 * Plus the small pieces the apps share: piping a TCP connection to a stream, and their events.
 */
import type { MuxStream } from "../net/mux.ts";
import { type ChannelRoute, type ExposedService, takesChannel } from "./tunnel_services.ts";

/**
 * The part of a link's multiplexer an app uses: open streams, send datagrams. A real Mux in the
 * node's own process; a stand-in over the control socket in an app attached to a running node.
 */
export interface MemberMux {
  open(protocol: string, meta?: unknown): MuxStream;
  /** False when the datagram was dropped (too large, link gone, queue full). */
  sendDatagram(channel: number, data: Uint8Array): boolean;
  /** Who is on the other side (for messages). */
  readonly peer: string;
  readonly isClosed: boolean;
}

/** What an app reports; the CLI prints it (or, with --json, one object per line). */
export interface AppEvent {
  event: string;
  [field: string]: unknown;
}

export type AppSink = (e: AppEvent) => void;

/** A linked member as apps see it. */
export interface Member {
  readonly user: string;
  readonly address: string;
  readonly route: { path: "direct" | "relay"; transport: "tcp" | "quic"; kind: string; rttMs: number };
  /** The link's multiplexer, shared by every app: open streams on it, never close it. */
  readonly mux: MemberMux;
  /** Resolves when the link is gone (undefined after a clean close, else the reason). */
  readonly closed: Promise<string | undefined>;
  /** What the member's tunnels expose, as it told us over the link (src/apps/tunnel_services.ts). */
  readonly services: readonly ExposedService[];
}

/**
 * Which of its protocols' streams and which datagrams an app takes, when several apps take the same
 * protocol (two tunnels): data, so it crosses the control socket of an attached app.
 */
export interface AppRoute {
  /** A stream is taken when each key here is absent from its metadata or has this value. */
  meta?: Record<string, string | number>;
  /** Datagram channels taken; without it, every datagram no other app takes. */
  channels?: ChannelRoute[];
}

/** An app running on the node's links. */
export interface LinkApp {
  /** Stream protocols this app takes (one app per protocol). */
  readonly protocols?: readonly string[];
  /** A member linked (called for those linked already when the app attaches, too). */
  added?(m: Member): void;
  stream?(stream: MuxStream, m: Member): void;
  /** Datagrams of the link (the UDP tunnel), on the channels `route` names. */
  datagram?(channel: number, data: Uint8Array, m: Member): void;
  readonly route?: AppRoute;
  /** A member's exposed services changed. */
  servicesChanged?(m: Member): void;
}

/**
 * The app that takes a stream of `protocol`: one whose route names every key of its metadata
 * exactly first, then one that does not contradict it (a stream from an older peer names no port).
 */
export function streamApp<A extends LinkApp>(
  apps: Iterable<A>,
  protocol: string,
  meta: unknown,
): A | undefined {
  const m = (typeof meta === "object" && meta !== null ? meta : {}) as Record<string, unknown>;
  let lenient: A | undefined;
  for (const app of apps) {
    if (!app.protocols?.includes(protocol)) continue;
    const want = Object.entries(app.route?.meta ?? {});
    if (want.every(([k, v]) => m[k] === v)) return app;
    if (!lenient && want.every(([k, v]) => m[k] === undefined || m[k] === v)) lenient = app;
  }
  return lenient;
}

/** The app that takes a datagram on `channel`: one that names the channel, else one that names none. */
export function datagramApp<A extends LinkApp>(apps: Iterable<A>, channel: number): A | undefined {
  let fallback: A | undefined;
  for (const app of apps) {
    if (!app.datagram) continue;
    const routes = app.route?.channels;
    if (routes === undefined) fallback ??= app;
    else if (takesChannel(routes, channel)) return app;
  }
  return fallback;
}

/** Where apps attach: the node's links. */
export interface AppHost {
  attach(app: LinkApp): () => void;
  members(): Member[];
}
/**
 * TCP reads go into READ_BUFFERS buffers in turn; one is reused only once the link took what it
 * held. They start small (a game's connection moves little) and double, up to READ_BUFFER_MAX, each
 * time a read fills one: a bulk stream then moves a frame's worth per read, not a quarter of it.
 */
const READ_BUFFER_MIN = 64 * 1024;
const READ_BUFFER_MAX = 1024 * 1024;
const READ_BUFFERS = 4;

/**
 * Copies `conn` to `stream` (then FIN) and `stream` to `conn` (then half-close), until both
 * directions end. A reset or a broken socket ends both; the promise resolves either way, with
 * the reason when it was not clean. Back-pressure both ways: a full stream window stops reading
 * the socket, a slow socket stops reading the stream (and so its credit).
 */
export async function pipeConn(conn: Deno.TcpConn, stream: MuxStream): Promise<string | undefined> {
  let failed: string | undefined;
  const fail = (err: unknown) => {
    failed ??= err instanceof Error ? err.message : String(err);
    stream.reset(failed);
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const up = (async () => {
    // `at`: the stream position up to which a slot's bytes were written; the slot is free again
    // once the stream sent that far (by the time the reads come round to it, it mostly has).
    const slots: { buf: Uint8Array; at: number }[] = [];
    let size = READ_BUFFER_MIN;
    for (let k = 0;; k++) {
      if (slots.length < READ_BUFFERS && k === slots.length) {
        slots.push({ buf: new Uint8Array(size), at: 0 });
      }
      const slot = slots[k % slots.length];
      if (stream.sentBytes < slot.at) await stream.sent(slot.at); // the stream keeps a view until it is sealed
      if (slot.buf.length < size) slot.buf = new Uint8Array(size);
      const n = await conn.read(slot.buf);
      if (n === null) break;
      if (n === slot.buf.length && size < READ_BUFFER_MAX) size *= 2; // the socket held more
      // Awaited even when queued at once: the link's write loop, scheduled by this write, then
      // seals and sends before the next socket read is set up (a round trip's critical path).
      await stream.write(slot.buf.subarray(0, n));
      slot.at = stream.written;
    }
    stream.closeWrite();
  })().catch(fail);
  const down = (async () => {
    for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
      let off = 0;
      while (off < chunk.length) off += await conn.write(chunk.subarray(off));
    }
    await conn.closeWrite();
  })().catch(fail);
  await Promise.all([up, down]);
  if (failed === undefined) {
    try {
      conn.close();
    } catch {
      // closed by a failure path
    }
  }
  return failed;
}
