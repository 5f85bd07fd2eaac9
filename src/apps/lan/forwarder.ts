/**
 * The generic LAN discovery forwarder (`--broadcast PORT`, `--multicast GROUP:PORT`): datagrams a
 * program here broadcasts (or sends to the group) are carried to every member, whose forwarder
 * replays them on its machine (or LAN, with --bind), both ways. Most LAN browsers find servers this
 * way: a query or announcement broadcast, answered by unicast — and the answer needs a tunnel for
 * the game itself, so this pairs with `--expose` / `--local`.
 *
 * One "lan" stream each way per link, JSON lines {g: group or "", p: port, d: base64url}. A member
 * replays only to the ports and groups its own user named, never where a datagram says, and at
 * most MAX_PER_SECOND a second. Loop prevention: ./loop_guard.ts (what we replayed is never sent
 * on), and a datagram from a link is never carried to other links.
 */
import type { Socket } from "node:dgram";
import { b64u, fromB64u } from "../../protocol/bytes.ts";
import type { MuxStream } from "../../net/mux.ts";
import { writeLine } from "../../net/line_queue.ts";
import type { AppSink, LinkApp, Member } from "../app_host.ts";
import { LanSender, listenLan, type Scope } from "./lan_socket.ts";
import { LoopGuard } from "./loop_guard.ts";

export const LAN_PROTOCOL = "lan";
/** Datagrams replayed per member and second at most (discovery is a few a second). */
export const MAX_PER_SECOND = 50;
/** The largest datagram carried: discovery packets are small. */
const MAX_DATAGRAM = 4096;

export interface LanChannel {
  port: number;
  /** A multicast group; none: the port's broadcasts. */
  group?: string;
}

export function channelName(c: LanChannel): string {
  return c.group ? `${c.group}:${c.port}` : `broadcast ${c.port}`;
}

export interface LanForwarderOptions {
  channels: readonly LanChannel[];
  scope: Scope;
  emit: AppSink;
  now?: () => number;
}

const decoder = new TextDecoder();

export class LanForwarder implements LinkApp {
  readonly protocols = [LAN_PROTOCOL];
  readonly guard: LoopGuard;
  readonly #out = new Map<Member, MuxStream>();
  readonly #sockets: Socket[] = [];
  readonly #budget = new Map<Member, { second: number; count: number }>();
  #sender?: LanSender;
  carried = 0;
  replayed = 0;

  constructor(readonly opts: LanForwarderOptions) {
    this.guard = new LoopGuard(opts.now);
  }

  async start(): Promise<void> {
    this.#sender = await LanSender.open(
      this.opts.scope,
      this.opts.channels.flatMap((c) => c.group ? [c.group] : []),
    );
    this.guard.addSource("0.0.0.0", this.#sender.port);
    for (const c of this.opts.channels) {
      this.#sockets.push(
        await listenLan(c.port, c.group, (data, from) => {
          if (this.guard.isEcho(data, from) || data.length > MAX_DATAGRAM) return;
          this.#carry(c, data);
        }),
      );
    }
  }

  added(m: Member): void {
    try {
      this.#out.set(m, m.mux.open(LAN_PROTOCOL, {}));
    } catch {
      return; // the link ended already
    }
    void m.closed.then(() => {
      this.#out.delete(m);
      this.#budget.delete(m);
    });
  }

  stream(stream: MuxStream, m: Member): void {
    void (async () => {
      let rest = "";
      try {
        for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
          rest += decoder.decode(chunk, { stream: true });
          let nl: number;
          while ((nl = rest.indexOf("\n")) >= 0) {
            this.#line(rest.slice(0, nl), m);
            rest = rest.slice(nl + 1);
          }
          if (rest.length > 2 * MAX_DATAGRAM) return stream.reset("line too long");
        }
      } catch {
        // the link ended
      }
    })();
  }

  #carry(c: LanChannel, data: Uint8Array): void {
    if (this.#out.size === 0) return;
    const line = { g: c.group ?? "", p: c.port, d: b64u(data) };
    for (const s of this.#out.values()) writeLine(s, line);
    this.carried++;
    this.opts.emit({
      event: "lan_carried",
      channel: channelName(c),
      bytes: data.length,
      members: this.#out.size,
    });
  }

  #line(text: string, m: Member): void {
    let v: { g?: unknown; p?: unknown; d?: unknown };
    try {
      v = JSON.parse(text);
    } catch {
      return;
    }
    const c = this.opts.channels.find((c) => c.port === v.p && (c.group ?? "") === v.g);
    if (!c || typeof v.d !== "string" || !this.#sender || !this.#spend(m)) return;
    const data = fromB64u(v.d);
    if (!data || data.length > MAX_DATAGRAM) return;
    this.guard.replayed(data);
    this.#sender.send(data, c.port, c.group);
    this.replayed++;
    this.opts.emit({ event: "lan_replayed", channel: channelName(c), peer: m.user, bytes: data.length });
  }

  #spend(m: Member): boolean {
    const second = Math.floor((this.opts.now ?? Date.now)() / 1000);
    const b = this.#budget.get(m);
    if (!b || b.second !== second) {
      this.#budget.set(m, { second, count: 1 });
      return true;
    }
    return ++b.count <= MAX_PER_SECOND;
  }

  close(): void {
    for (const s of this.#out.values()) s.closeWrite();
    for (const s of this.#sockets) s.close();
    this.#sender?.close();
  }
}
