/**
 * The local control endpoint of a person's node (design: "One node per person"): apps started
 * later — `chat`, `send`, `receive`, `tunnel`, `peers` — attach to the running node and use its
 * links instead of meeting the group again, several at once.
 *
 * One Unix socket per node identity (mail address and user id) in the user's own run folder
 * (owner-only, like the status files). Over it runs the mux of src/net/mux.ts, unencrypted
 * (src/node/control_channel.ts):
 *  - "hello": the node says who it is (pid, since when) and closes the stream;
 *  - "attach" {protocols, datagrams, route}: the app's streams of those protocols and the link's
 *    datagrams (those `route` names: src/apps/app_host.ts) come to it; the node writes one JSON line
 *    per member that links or leaves, and one whenever what a member exposes changes;
 *  - "open" {member, protocol, meta}: a stream to a member, spliced by the node to a stream on
 *    that member's link; the node does the same the other way ("incoming");
 *  - "room": the node's chat room (src/node/room.ts): the node writes the room's events as JSON
 *    lines, the app writes {say: text} lines;
 *  - datagrams carry a 4-byte member id before the payload, on the app's own channel numbers.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fromUtf8 } from "../protocol/bytes.ts";
import { Mux, type MuxStream } from "../net/mux.ts";
import type { AppRoute, LinkApp, Member } from "../apps/app_host.ts";
import { decodeServices, encodeServices } from "../apps/tunnel_services.ts";
import type { RoomHost } from "../apps/chat.ts";
import { ControlChannel } from "./control_channel.ts";
import { LineQueue, writeLine } from "../net/line_queue.ts";

export interface NodeIdentity {
  address: string;
  user: string;
}

/** What a node says about itself to a process that connects. */
export interface NodeHello {
  pid: number;
  since: string;
  address: string;
  user: string;
  command: string;
}

export const HELLO = "hello";
export const ATTACH = "attach";
export const OPEN = "open";
export const ROOM = "room";
/** The metadata key of a stream the node passes to an app: which member it comes from. */
export const INCOMING = "member";

/** Where the node for `id` listens: one socket per identity in `dir` (the owner-only run folder). */
export function controlPath(dir: string, id: NodeIdentity): string {
  const h = createHash("sha256").update(`${id.address.toLowerCase()}\n${id.user}`).digest("hex").slice(0, 16);
  return join(dir, `node-${h}.sock`);
}

/**
 * Copies a → b until a ends (then half-closes b); a failure resets both. Without a copy: each
 * chunk goes to b as the view a gave, and a is read again only once b sealed it (a chunk is valid
 * until the next read). A copy per chunk was 100 MiB/s of fresh buffers in the node, and the full
 * GCs they caused stalled the game datagrams the node carries beside (issue 16).
 */
export async function splice(a: MuxStream, b: MuxStream): Promise<void> {
  try {
    for (let chunk = await a.read(); chunk !== null; chunk = await a.read()) {
      await b.write(chunk);
      await b.sent(b.written);
    }
    b.closeWrite();
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^The stream was reset: /, "") : String(err);
    a.reset(why);
    b.reset(why);
  }
}

/** Reads JSON lines from a stream until it ends. */
export async function* readLines(stream: MuxStream): AsyncGenerator<Record<string, unknown>> {
  let rest = "";
  for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
    rest += fromUtf8(chunk);
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      try {
        const v = JSON.parse(line);
        if (typeof v === "object" && v !== null && !Array.isArray(v)) yield v;
      } catch {
        // not ours
      }
    }
    if (rest.length > 64 * 1024) return;
  }
}

/** An attached app's route, as far as it is well formed. */
function parseRoute(v: unknown): AppRoute | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const route: AppRoute = {};
  if (typeof o.meta === "object" && o.meta !== null) {
    route.meta = Object.fromEntries(
      Object.entries(o.meta).filter(([, x]) => typeof x === "string" || typeof x === "number"),
    ) as Record<string, string | number>;
  }
  if (Array.isArray(o.channels)) {
    route.channels = o.channels
      .filter((c) => typeof c?.mask === "number" && typeof c?.value === "number")
      .slice(0, 16)
      .map((c) => ({ mask: c.mask, value: c.value }));
  }
  return route;
}

/** The services of a "member" or "services" line (see encodeServices). */
export function servicesOf(line: unknown) {
  return typeof line === "object" && line !== null
    ? decodeServices({ ...(line as Record<string, unknown>), t: "expose" }) ?? []
    : [];
}

export function memberPrefix(id: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + data.length);
  new DataView(out.buffer).setUint32(0, id);
  out.set(data, 4);
  return out;
}

/** What the server needs of the node: its links, as apps see them. */
export interface ControlHost {
  attach(app: LinkApp): () => void;
}

export interface ControlServerOptions {
  dir: string;
  identity: NodeIdentity;
  hello: () => NodeHello;
  host: ControlHost;
  /** The node's chat room, when it carries one. */
  room?: RoomHost;
  /** An app attached or left (for the node's log). */
  onApp?: (e: { event: "app_attached" | "app_detached"; protocols: string[] }) => void;
}

export class ControlServer {
  readonly #listener: Deno.Listener;
  readonly #conns = new Set<Mux>();
  readonly #accepting: Promise<void>;

  private constructor(readonly path: string, listener: Deno.Listener, readonly opts: ControlServerOptions) {
    this.#listener = listener;
    this.#accepting = this.#accept();
  }

  /** Listens on the identity's socket; a stale socket file of a dead node is replaced. */
  static async open(opts: ControlServerOptions): Promise<ControlServer> {
    await Deno.mkdir(opts.dir, { recursive: true, mode: 0o700 });
    const path = controlPath(opts.dir, opts.identity);
    await Deno.remove(path).catch(() => {});
    const listener = Deno.listen({ transport: "unix", path });
    await Deno.chmod(path, 0o600).catch(() => {});
    return new ControlServer(path, listener, opts);
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // closed
      }
      this.#serve(conn);
    }
  }

  #serve(conn: Deno.Conn): void {
    const ids = new Map<Member, number>();
    const members = new Map<number, Member>();
    let next = 1;
    const idOf = (m: Member) => {
      let id = ids.get(m);
      if (id === undefined) {
        id = next++;
        ids.set(m, id);
        members.set(id, m);
        void m.closed.then(() => {
          members.delete(id!);
          ids.delete(m);
        });
      }
      return id;
    };
    const detach: (() => void)[] = [];
    const mux = new Mux(new ControlChannel(conn, "listener"), {
      peer: "an attached app",
      keepaliveMs: 0,
      onStream: (s) => {
        const meta = (s.meta ?? {}) as Record<string, unknown>;
        switch (s.protocol) {
          case HELLO:
            writeLine(s, this.opts.hello());
            s.closeWrite();
            return;
          case ATTACH: {
            const protocols = Array.isArray(meta.protocols)
              ? meta.protocols.filter((p): p is string => typeof p === "string").slice(0, 16)
              : [];
            const app: LinkApp = {
              protocols,
              route: parseRoute(meta.route),
              added: (m) => {
                const id = idOf(m);
                writeLine(s, {
                  t: "member",
                  id,
                  user: m.user,
                  address: m.address,
                  route: m.route,
                  services: encodeServices(m.services),
                });
                void m.closed.then((reason) => writeLine(s, { t: "gone", id, reason }));
              },
              servicesChanged: (m) =>
                writeLine(s, { ...encodeServices(m.services), t: "services", id: idOf(m) }),
              stream: (incoming, m) => {
                let out: MuxStream;
                try {
                  // The app's stream keeps the member's protocol; the metadata names the member.
                  out = mux.open(incoming.protocol, { [INCOMING]: idOf(m), meta: incoming.meta });
                } catch {
                  return incoming.reset("the app that takes these streams has gone");
                }
                void splice(incoming, out);
                void splice(out, incoming);
              },
              datagram: meta.datagrams === true
                ? (channel, data, m) => void mux.sendDatagram(channel, memberPrefix(idOf(m), data))
                : undefined,
            };
            detach.push(this.opts.host.attach(app));
            // Every member linked now was announced above: say so (`peers` lists them and exits).
            writeLine(s, { t: "ready" });
            this.opts.onApp?.({ event: "app_attached", protocols });
            // The attachment lasts as long as the app keeps this stream (or the connection) open.
            void (async () => {
              try {
                while ((await s.read()) !== null) { /* nothing is sent this way */ }
              } catch { /* reset */ }
            })();
            return;
          }
          case OPEN: {
            const m = typeof meta.member === "number" ? members.get(meta.member) : undefined;
            if (!m || typeof meta.protocol !== "string") return s.reset("that member is not linked any more");
            let out: MuxStream;
            try {
              out = m.mux.open(meta.protocol, meta.meta);
            } catch (err) {
              return s.reset((err as Error).message);
            }
            void splice(s, out);
            void splice(out, s);
            return;
          }
          case ROOM: {
            const room = this.opts.room;
            if (!room) return s.reset("this node carries no chat room");
            const out = new LineQueue(s);
            const off = room.subscribe((e) => out.send(e));
            void (async () => {
              try {
                for await (const line of readLines(s)) if (typeof line.say === "string") room.say(line.say);
              } catch {
                // the app went away
              }
              off();
            })();
            return;
          }
          default:
            s.reset(`the node takes no "${s.protocol}" streams`);
        }
      },
      onDatagram: (channel, data) => {
        if (data.length < 4) return;
        const m = members.get(new DataView(data.buffer, data.byteOffset).getUint32(0));
        m?.mux.sendDatagram(channel, data.subarray(4));
      },
    });
    this.#conns.add(mux);
    void mux.closed.then(() => {
      this.#conns.delete(mux);
      for (const d of detach) d();
      if (detach.length > 0) this.opts.onApp?.({ event: "app_detached", protocols: [] });
    });
  }

  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    await this.#accepting;
    await Promise.allSettled([...this.#conns].map((m) => m.close()));
    await Deno.remove(this.path).catch(() => {});
  }
}
