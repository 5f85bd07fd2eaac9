/**
 * The group chat (`mailmeet chat`): everyone this peer is linked to is in one room. A line said
 * here goes to every linked peer; a line from a peer is shown with that peer's user id (the one
 * proved in the link handshake, never one the message claims) and the time it was said.
 *
 * Each side opens one "chat" stream per link and writes its lines there, one JSON object per line
 * (`{"t": text, "at": epoch ms}`); it reads the other side's lines from the stream the other side
 * opened. There is no relaying: a peer hears exactly those it holds a link to.
 */
import type { MuxStream } from "../net/mux.ts";
import type { AppSink, LinkApp, Member as LinkedMember } from "./links.ts";

export const CHAT_PROTOCOL = "chat";
/** A longer line is cut (a chat line, not a file transfer). */
export const MAX_LINE_BYTES = 16 * 1024;

interface Member {
  user: string;
  link: LinkedMember;
  out: MuxStream;
}

export class ChatRoom implements LinkApp {
  readonly protocols = [CHAT_PROTOCOL];
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

  /** One link per user in the room (for `/ping`). */
  links(): LinkedMember[] {
    const seen = new Map<string, LinkedMember>();
    for (const m of this.#members) seen.set(m.user, m.link);
    return [...seen.values()];
  }

  added(link: LinkedMember): void {
    const joined = !this.users.includes(link.user);
    let out: MuxStream;
    try {
      out = link.mux.open(CHAT_PROTOCOL);
    } catch {
      return; // the link ended already
    }
    const member: Member = { user: link.user, link, out };
    this.#members.add(member);
    // Two links to one user can overlap for a moment (both dialed at once): one notice per person.
    if (joined) this.opts.emit({ event: "joined", peer: link.user, address: link.address });
    const pending = this.#pending;
    this.#pending = [];
    for (const text of pending) this.#write(member, text, this.#now());
    void link.closed.then((reason) => {
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

  /** Stops saying anything; the node's links (closed when the node stops) tell the others we left. */
  close(): Promise<void> {
    for (const m of this.#members) m.out.closeWrite();
    this.#members.clear();
    return Promise.resolve();
  }

  #now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  #write(m: Member, text: string, at: number): void {
    const bytes = this.#encoder.encode(`${JSON.stringify({ t: text, at })}\n`);
    m.out.write(bytes).catch(() => {}); // a member that left mid-line just misses it
  }

  stream(stream: MuxStream, m: LinkedMember): void {
    // The other side started chatting after our line to it was refused (it had no room open
    // yet, or it attached to its node later): open ours again.
    const mine = [...this.#members].find((x) => x.link === m);
    if (mine && mine.out.failure) {
      try {
        mine.out = m.mux.open(CHAT_PROTOCOL);
      } catch {
        // the link ended meanwhile
      }
    }
    const task = this.#readLines(m.user, stream).catch(() => {});
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
