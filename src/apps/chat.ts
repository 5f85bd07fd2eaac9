/**
 * The group chat (`mailmeet chat`): everyone this peer is linked to is in one room. A line said
 * here goes to every linked peer; a line from a peer is shown with that peer's user id (the one
 * proved in the link handshake, never one the message claims) and the time it was said.
 *
 * Each side opens one "chat" stream per link and writes its lines there, one JSON object per line
 * (`{"t": text, "at": epoch ms}`); it reads the other side's lines from the stream the other side
 * opened. There is no relaying: a peer hears exactly those it holds a link to.
 */
import type { Mux, MuxStream } from "../net/mux.ts";
import type { NetPeerLink } from "../net/peer_link.ts";
import { type AppSink, attachMux } from "./links.ts";

export const CHAT_PROTOCOL = "chat";
/** A longer line is cut (a chat line, not a file transfer). */
export const MAX_LINE_BYTES = 16 * 1024;

interface Member {
  user: string;
  mux: Mux;
  out: MuxStream;
}

export class ChatRoom {
  readonly #members = new Set<Member>();
  readonly #reading = new Set<Promise<void>>();
  /** Lines said before anyone was linked: delivered to the first who comes. */
  #pending: string[] = [];
  readonly #encoder = new TextEncoder();

  constructor(readonly opts: { emit: AppSink; now?: () => number }) {}

  /** User ids in the room now. */
  get users(): string[] {
    return [...new Set([...this.#members].map((m) => m.user))].sort();
  }

  add(link: NetPeerLink): void {
    const mux = attachMux(link, { onStream: (s) => this.#incoming(link.user, s) });
    const joined = !this.users.includes(link.user);
    const member: Member = { user: link.user, mux, out: mux.open(CHAT_PROTOCOL) };
    this.#members.add(member);
    // Two links to one user can overlap for a moment (both dialed at once): one notice per person.
    if (joined) this.opts.emit({ event: "joined", peer: link.user, address: link.address });
    const pending = this.#pending;
    this.#pending = [];
    for (const text of pending) this.#write(member, text, this.#now());
    void mux.closed.then((reason) => {
      this.#members.delete(member);
      if (!this.users.includes(link.user)) this.opts.emit({ event: "left", peer: link.user, reason });
    });
  }

  /** Sends a line to everyone in the room; kept for the first peer when nobody is there yet. */
  say(text: string): number {
    const line = text.replace(/[\r\n]+$/, "");
    if (this.#members.size === 0) {
      this.#pending.push(line);
      return 0;
    }
    const at = this.#now();
    for (const m of this.#members) this.#write(m, line, at);
    return this.#members.size;
  }

  /** Delivers what was said, then leaves: the others see us leave. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#members].map((m) => m.mux.close()));
    await Promise.allSettled([...this.#reading]);
  }

  #now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  #write(m: Member, text: string, at: number): void {
    const bytes = this.#encoder.encode(`${JSON.stringify({ t: text, at })}\n`);
    m.out.write(bytes).catch(() => {}); // a member that left mid-line just misses it
  }

  #incoming(user: string, stream: MuxStream): void {
    if (stream.protocol !== CHAT_PROTOCOL) {
      stream.reset(`this peer is chatting; it takes no "${stream.protocol}" streams`);
      return;
    }
    const task = this.#readLines(user, stream).catch(() => {});
    this.#reading.add(task);
    void task.finally(() => this.#reading.delete(task));
  }

  async #readLines(user: string, stream: MuxStream): Promise<void> {
    const decoder = new TextDecoder();
    let rest = "";
    for (let chunk = await stream.read(); chunk !== null; chunk = await stream.read()) {
      rest += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        this.#line(user, rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
      if (rest.length > MAX_LINE_BYTES * 2) {
        stream.reset("a chat line was too long");
        return;
      }
    }
    stream.closeWrite();
  }

  #line(user: string, raw: string): void {
    let msg: { t?: unknown; at?: unknown };
    try {
      msg = JSON.parse(raw);
    } catch {
      return; // not ours to show
    }
    if (typeof msg.t !== "string") return;
    // Control characters (escape sequences) could repaint the reader's terminal: dropped.
    // deno-lint-ignore no-control-regex
    const text = msg.t.slice(0, MAX_LINE_BYTES).replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
    const at = typeof msg.at === "number" && Number.isFinite(msg.at) ? msg.at : this.#now();
    this.opts.emit({ event: "chat", peer: user, text, sent: new Date(at).toISOString() });
  }
}
