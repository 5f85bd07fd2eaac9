/**
 * The group chat (`mailmeet chat`): one room for the whole group. The node carries the room — it
 * floods every line over its links, so a line reaches members we hold no link to, and it forwards
 * for others even when nobody chats on it (src/node/room.ts). This app only says lines into the
 * node's room and hears what the room reports:
 *  - {event:"room", members}: who is in the room (at once, then on every change);
 *  - {event:"chat", peer, text, sent, via?}: a line of someone else (`via`: the member it came
 *    through when `peer` is not linked to us);
 *  - {event:"said", peer, text, sent}: our own line, echoed as the others see it;
 *  - {event:"joined", peer, direct} and {event:"left", peer, reason?};
 *  - {event:"unreachable", peer, reason}: a member of the group (heard of by mail or over a link)
 *    that neither we nor anyone in the room reaches.
 */
import type { AppSink, LinkApp, Member } from "./app_host.ts";

/** The node's room as an app sees it: in the node's own process, or over its control socket. */
export interface RoomHost {
  /** Says a line to the room (kept for the first member when nobody is there yet). */
  say(text: string): void;
  /** Hears the room's events, starting with a "room" event and a "joined" for each one there now. */
  subscribe(listener: AppSink): () => void;
}

/** Control characters (escape sequences, line breaks) could repaint or fake lines on a terminal. */
export function cleanChatText(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/g, "");
}

export class ChatRoom implements LinkApp {
  /** The node's room carries the lines: no streams of our own. */
  readonly protocols: readonly string[] = [];
  #users: string[] = [];
  #host?: RoomHost;
  #off?: () => void;

  /** Our links, one per member (for `/ping`: round trips go over our own links only). */
  readonly #links = new Map<string, Member>();

  constructor(readonly opts: { emit: AppSink }) {}

  added(m: Member): void {
    this.#links.set(m.user, m);
    void m.closed.then(() => {
      if (this.#links.get(m.user) === m) this.#links.delete(m.user);
    });
  }

  /** The members we hold a link to. */
  links(): Member[] {
    return [...this.#links.values()];
  }

  /** Starts hearing `host`'s room. */
  connect(host: RoomHost): void {
    this.#host = host;
    this.#off = host.subscribe((e) => {
      if (e.event === "room" && Array.isArray(e.members)) this.#users = e.members.map(String);
      this.opts.emit(e);
    });
  }

  /** User ids in the room now (not ours). */
  get users(): string[] {
    return [...this.#users];
  }

  say(text: string): void {
    this.#host?.say(text.replace(/[\r\n]+$/, ""));
  }

  close(): Promise<void> {
    this.#off?.();
    this.#off = undefined;
    return Promise.resolve();
  }
}
