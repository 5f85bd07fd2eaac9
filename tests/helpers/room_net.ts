/**
 * Rooms (src/node/room.ts) of several members wired together in memory, on one injected clock:
 * a frame written on a link is queued and handed to the other end by `settle()`, so tests decide
 * when frames move and need no timers. `link(a, b)` links two members; `cut()` ends that link.
 */
import type { AppEvent, Member } from "../../src/apps/app_host.ts";
import type { MuxStream } from "../../src/net/mux.ts";
import { RoomService } from "../../src/node/room.ts";

export interface RoomMember {
  name: string;
  room: RoomService;
  /** What the member's chat app would have heard. */
  heard: AppEvent[];
  /** The lines it heard, as "peer: text" ("peer via x: text" when relayed). */
  lines(): string[];
}

interface InFlight {
  from: string;
  to: string;
  line: unknown;
  alive: () => boolean;
}

export class RoomNet {
  t = 1_000_000;
  readonly members = new Map<string, RoomMember>();
  readonly #flight: InFlight[] = [];
  /** Frames written on any link so far (to measure what flooding costs). */
  sent = 0;

  member(name: string, opts: { listening?: boolean } = {}): RoomMember {
    let n = 0;
    const room = new RoomService({
      user: name,
      now: () => this.t,
      // Distinct runs per member, fixed per test.
      random: (k) => new Uint8Array(k).fill(name.charCodeAt(0) + n++),
    });
    const heard: AppEvent[] = [];
    if (opts.listening !== false) room.subscribe((e) => heard.push(e));
    const m: RoomMember = {
      name,
      room,
      heard,
      lines: () =>
        heard.filter((e) => e.event === "chat").map((e) =>
          `${e.peer}${e.via ? ` via ${e.via}` : ""}: ${e.text}`
        ),
    };
    this.members.set(name, m);
    return m;
  }

  /** Links `a` and `b` (each sees the other as a member); returns how to cut the link. */
  link(a: RoomMember, b: RoomMember): { cut(reason?: string): void } {
    const ended = Promise.withResolvers<string | undefined>();
    let alive = true;
    const side = (self: RoomMember, other: RoomMember): Member => ({
      user: other.name,
      address: "mem",
      route: { path: "direct", transport: "tcp", kind: "lan", rttMs: 0 },
      closed: ended.promise,
      services: [],
      mux: {
        peer: other.name,
        isClosed: false,
        sendDatagram: () => false,
        open: () => this.#stream(self.name, other.name, () => alive),
      },
    });
    a.room.added(side(a, b));
    b.room.added(side(b, a));
    return {
      cut: (reason) => {
        alive = false;
        ended.resolve(reason);
      },
    };
  }

  /** Moves frames until none is in flight. */
  async settle(): Promise<void> {
    for (let round = 0; round < 10_000; round++) {
      // LineQueue writes one line per turn of the microtask queue.
      for (let i = 0; i < 20; i++) await Promise.resolve();
      if (this.#flight.length === 0) return;
      for (const f of this.#flight.splice(0)) {
        if (f.alive()) this.members.get(f.to)!.room.receive(f.line, f.from);
      }
    }
    throw new Error("the room never settled");
  }

  /** Advances the clock and lets every room tick. */
  after(ms: number): void {
    this.t += ms;
    for (const m of this.members.values()) m.room.tick();
  }

  #stream(from: string, to: string, alive: () => boolean): MuxStream {
    const decoder = new TextDecoder();
    return {
      failure: null,
      write: (bytes: Uint8Array) => {
        if (!alive()) return Promise.reject(new Error("closed"));
        this.sent++;
        this.#flight.push({ from, to, line: JSON.parse(decoder.decode(bytes)), alive });
        return Promise.resolve();
      },
    } as unknown as MuxStream;
  }
}
