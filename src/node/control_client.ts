/**
 * An app attached to its person's running node (src/node/control.ts): the node's members appear
 * here as members whose streams and datagrams travel over the control socket, so apps run
 * unchanged whether the node is in their own process or in the `join` next door.
 */
import { Mux, type MuxStream } from "../net/mux.ts";
import type { LinkApp, Member, MemberMux } from "../apps/app_host.ts";
import { ControlChannel } from "./control_channel.ts";
import {
  ATTACH,
  controlPath,
  HELLO,
  INCOMING,
  memberPrefix,
  type NodeHello,
  type NodeIdentity,
  OPEN,
  readLines,
  ROOM,
  servicesOf,
} from "./control.ts";
import type { ExposedService } from "../apps/tunnel_services.ts";
import { LineQueue } from "../net/line_queue.ts";
import type { AppSink } from "../apps/app_host.ts";
import type { RoomHost } from "../apps/chat.ts";

class RemoteMember implements Member {
  #gone = Promise.withResolvers<string | undefined>();
  #closed = false;
  readonly mux: MemberMux;
  services: readonly ExposedService[] = [];

  constructor(
    readonly id: number,
    readonly user: string,
    readonly address: string,
    readonly route: Member["route"],
    control: Mux,
  ) {
    const self = { id, user };
    this.mux = {
      open: (protocol, meta) => control.open(OPEN, { member: self.id, protocol, meta }),
      sendDatagram: (channel, data) => control.sendDatagram(channel, memberPrefix(self.id, data)),
      peer: user,
      get isClosed() {
        return control.isClosed;
      },
    };
  }

  get closed(): Promise<string | undefined> {
    return this.#gone.promise;
  }

  gone(reason?: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#gone.resolve(reason);
  }
}

export interface Attachment extends AsyncDisposable {
  /** Resolves once the members linked at attach time have all been announced. */
  readonly ready: Promise<void>;
  /** Resolves when the first member is linked (at once if the node has members already). */
  readonly firstLink: Promise<void>;
  /** Resolves when the node went away (it stopped, or the connection broke). */
  readonly nodeGone: Promise<string | undefined>;
  members(): Member[];
}

/** A connection to the running node of an identity; undefined when no node runs for it. */
export class ControlClient {
  private constructor(readonly hello: NodeHello, readonly mux: Mux, readonly conn: Deno.Conn) {}

  static async connect(dir: string, id: NodeIdentity): Promise<ControlClient | undefined> {
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ transport: "unix", path: controlPath(dir, id) });
    } catch {
      return undefined; // no socket, or a stale one: no node runs
    }
    const incoming: ((s: MuxStream) => void)[] = [];
    const mux = new Mux(new ControlChannel(conn, "dialer"), {
      peer: "the running node",
      keepaliveMs: 0,
      onStream: (s) => {
        const take = incoming[0];
        if (take) take(s);
        else s.reset("this app takes no streams");
      },
      onDatagram: (ch, data) => datagrams[0]?.(ch, data),
    });
    const datagrams: ((ch: number, data: Uint8Array) => void)[] = [];
    try {
      const s = mux.open(HELLO, {});
      s.closeWrite();
      let hello: NodeHello | undefined;
      for await (const line of readLines(s)) hello ??= line as unknown as NodeHello;
      if (!hello) throw new Error("no hello");
      const client = new ControlClient(hello, mux, conn);
      client.#incoming = incoming;
      client.#datagrams = datagrams;
      return client;
    } catch {
      mux.abort("not a mailmeet node");
      return undefined;
    }
  }

  #incoming: ((s: MuxStream) => void)[] = [];
  #datagrams: ((ch: number, data: Uint8Array) => void)[] = [];

  /** Runs `app` on the node's links (its protocols' streams and the datagrams come here). */
  attach(app: LinkApp, datagrams = app.datagram !== undefined): Attachment {
    const members = new Map<number, RemoteMember>();
    const first = Promise.withResolvers<void>();
    const ready = Promise.withResolvers<void>();
    const stream = this.mux.open(ATTACH, { protocols: app.protocols ?? [], datagrams, route: app.route });
    this.#incoming.push((s) => {
      const meta = (s.meta ?? {}) as Record<string, unknown>;
      const id = meta[INCOMING];
      const m = typeof id === "number" ? members.get(id) : undefined;
      if (!m || !app.stream) return s.reset("not taken");
      // The app sees the member's own metadata, as on a direct link.
      (s as { meta: unknown }).meta = meta.meta;
      app.stream(s, m);
    });
    this.#datagrams.push((ch, data) => {
      if (data.length < 4 || !app.datagram) return;
      const m = members.get(new DataView(data.buffer, data.byteOffset).getUint32(0));
      if (m) app.datagram(ch, data.subarray(4), m);
    });
    void (async () => {
      try {
        for await (const e of readLines(stream)) {
          if (e.t === "member" && typeof e.id === "number" && typeof e.user === "string") {
            const m = new RemoteMember(
              e.id,
              e.user,
              String(e.address ?? ""),
              e.route as Member["route"],
              this.mux,
            );
            m.services = servicesOf(e.services);
            members.set(e.id, m);
            first.resolve();
            app.added?.(m);
          } else if (e.t === "services" && typeof e.id === "number") {
            const m = members.get(e.id);
            if (m) {
              m.services = servicesOf(e);
              app.servicesChanged?.(m);
            }
          } else if (e.t === "ready") {
            ready.resolve();
          } else if (e.t === "gone" && typeof e.id === "number") {
            members.get(e.id)?.gone(typeof e.reason === "string" ? e.reason : undefined);
            members.delete(e.id);
          }
        }
      } catch {
        // the node went away: below
      }
      for (const m of members.values()) m.gone("the node stopped");
      members.clear();
      ready.resolve();
    })();
    return {
      ready: ready.promise,
      firstLink: first.promise,
      nodeGone: this.mux.closed,
      members: () => [...members.values()],
      [Symbol.asyncDispose]: () => this.close(),
    };
  }

  /** The node's chat room: its events come here, lines said go to it. */
  room(): RoomHost {
    const listeners = new Set<AppSink>();
    const stream = this.mux.open(ROOM, {});
    // A pasted page of lines goes out in order, one write at a time.
    const out = new LineQueue(stream);
    void (async () => {
      try {
        for await (const e of readLines(stream)) {
          if (typeof e.event !== "string") continue;
          for (const l of listeners) l(e as { event: string });
        }
      } catch {
        // the node went away (the attachment says so)
      }
    })();
    return {
      say: (text) => void out.send({ say: text }),
      subscribe: (l) => {
        listeners.add(l);
        return () => void listeners.delete(l);
      },
    };
  }

  async close(): Promise<void> {
    await this.mux.close();
  }
}
