/**
 * The representative host (patent 【0062】): answers nothing itself; it passes each request on,
 * unchanged, to its worker hosts in turn, so each gets an equal share. The sealed request names the
 * peer's own mailbox, so the worker replies straight to the peer. A worker whose mail is refused is
 * skipped for a while (doubling, up to an hour) and the request goes to the next one.
 */
import type { Sender } from "../mail/smtp.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { NonceLedger } from "./host_storage.ts";
import type { EventSink } from "./events.ts";
import type { Disposition, InboundMail } from "./inbox.ts";
import { screen, type ScreenSettings } from "./screen.ts";

export const WORKER_BACKOFF_MS = 60_000;
const WORKER_BACKOFF_MAX_MS = 3600_000;

export interface ForwarderSettings extends ScreenSettings {
  address: string;
  marker: string;
  workers: readonly string[];
}

interface Worker {
  address: string;
  forwarded: number;
  failures: number;
  /** Not tried again before this time. */
  restUntil: number;
}

export class Forwarder {
  #workers: Worker[];
  #next = 0;
  #clock: () => number;

  constructor(
    readonly settings: ForwarderSettings,
    readonly deps: { sender: Sender; table: NonceLedger; events: EventSink; clock?: () => number },
  ) {
    this.#workers = settings.workers.map((address) => ({ address, forwarded: 0, failures: 0, restUntil: 0 }));
    this.#clock = deps.clock ?? Date.now;
  }

  /** How many requests each worker has taken (for status and tests). */
  get shares(): Record<string, number> {
    return Object.fromEntries(this.#workers.map((w) => [w.address, w.forwarded]));
  }

  async handle(m: InboundMail): Promise<Disposition> {
    const now = this.#clock();
    // The same checks as a host: a replay would otherwise cost every worker a reply.
    const s = screen(m, this.deps.table, this.settings, now);
    if (!s.ok) {
      this.deps.events({ event: "host_dropped", reason: s.reason, detail: `mail ${m.id}` });
      return m.message instanceof ProtocolError ? "quarantine" : "delete";
    }
    if (s.seen === "answered") {
      this.deps.events({
        event: "host_dropped",
        reason: "it was passed on before a restart; deleted without passing it on again",
        detail: `mail ${m.id}`,
      });
      return "delete";
    }
    if (s.message.kind === "request") {
      await this.#toOne(m, s.message.user, now);
    } else {
      // A failure notice or sync concerns every worker's table.
      for (const w of this.#workers) await this.#send(w, m, now).catch(() => {});
    }
    this.deps.table.settle(s.nonce, now, () => {});
    return "delete";
  }

  /** Round robin over workers that are not resting; if all rest, the one resting longest is tried. */
  async #toOne(m: InboundMail, user: string, now: number): Promise<void> {
    const n = this.#workers.length;
    for (let tried = 0; tried < n; tried++) {
      const w = this.#pick(now);
      try {
        await this.#send(w, m, now);
        this.deps.events({ event: "info", message: `forwarded ${user}'s request to ${w.address}` });
        return;
      } catch (err) {
        this.deps.events({
          event: "error",
          message: `Worker ${w.address} refused a forwarded request (${
            (err as Error).message
          }); skipping it for a while.`,
        });
      }
    }
    throw new Error("every worker host refused the request; it stays in the mailbox for a retry");
  }

  #pick(now: number): Worker {
    const n = this.#workers.length;
    for (let i = 0; i < n; i++) {
      const w = this.#workers[(this.#next + i) % n];
      if (w.restUntil <= now) {
        this.#next = (this.#next + i + 1) % n;
        return w;
      }
    }
    const w = [...this.#workers].sort((a, b) => a.restUntil - b.restUntil)[0];
    this.#next = (this.#workers.indexOf(w) + 1) % n;
    return w;
  }

  async #send(w: Worker, m: InboundMail, now: number): Promise<void> {
    try {
      // Unchanged: the same sealed block, so the worker sees the peer's own request (and nonce).
      await this.deps.sender.send({
        priority: "reply",
        from: this.settings.address,
        to: [w.address],
        subject: this.settings.marker,
        text: m.mail.text,
      });
      w.forwarded++;
      this.deps.events({ event: "mail_sent", kind: "forward", recipients: 1 });
      w.failures = 0;
      w.restUntil = 0;
    } catch (err) {
      w.failures++;
      w.restUntil = now + Math.min(WORKER_BACKOFF_MAX_MS, WORKER_BACKOFF_MS * 2 ** (w.failures - 1));
      throw err;
    }
  }
}
