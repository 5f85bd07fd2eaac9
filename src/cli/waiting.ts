/**
 * A node waiting for its first link says what it waits for, now and then, instead of sitting
 * silent until --timeout: for the host(s) to answer, for a peer to dial. It learns where the wait
 * stands from the node's own events; `tick()` is called by a timer (tests call it with their clock).
 */
import type { EventSink, NodeEvent } from "../roles/events.ts";

/** How often a waiting node says it still waits. */
export const WAIT_REPORT_MS = 15_000;
/** From this long on, a silent host gets the likely reasons added. */
export const HOST_HINT_MS = 60_000;

export interface WaitOptions {
  /** The --via host addresses (empty: the first node of a group, waiting to be asked). */
  vias: readonly string[];
  emit: EventSink;
  now?: () => number;
  everyMs?: number;
}

function span(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s` : `${Math.round(s / 60)} min`;
}

export class WaitReporter {
  readonly #now: () => number;
  readonly #every: number;
  readonly #started: number;
  #askedAt?: number;
  #repliedAt?: number;
  #replyFrom?: string;
  /** How many peers the last reply listed (none: we are the first one in). */
  #replyPeers = 0;
  #linked = false;
  #lastReport: number;
  /** Host addresses whose mail bounced for good, with why. */
  readonly bounced = new Map<string, string>();

  constructor(readonly opts: WaitOptions) {
    this.#now = opts.now ?? Date.now;
    this.#every = opts.everyMs ?? WAIT_REPORT_MS;
    this.#started = this.#now();
    this.#lastReport = this.#started;
  }

  /** Passes every event on, noting how the wait stands. */
  track(next: EventSink): EventSink {
    return (e) => {
      this.note(e);
      next(e);
    };
  }

  note(e: NodeEvent): void {
    const now = this.#now();
    switch (e.event) {
      case "request_sent":
        this.#askedAt = now;
        this.#repliedAt = undefined;
        this.#lastReport = now;
        break;
      case "reply":
        this.#repliedAt = now;
        this.#replyFrom = e.from;
        this.#replyPeers = e.peers;
        this.#lastReport = now;
        break;
      case "connected":
        this.#linked = true;
        break;
      case "bounced":
        if (e.final && this.opts.vias.includes(e.address)) this.bounced.set(e.address, e.reason);
        break;
    }
  }

  /**
   * When every --via address bounced for good and none answered, nobody will: the sentence that
   * says so. Undefined while some host may still answer.
   */
  get allBounced(): string | undefined {
    const { vias } = this.opts;
    if (vias.length === 0 || this.#repliedAt !== undefined || this.#linked) return undefined;
    if (!vias.every((v) => this.bounced.has(v))) return undefined;
    const list = vias.map((v) => `${v} (${this.bounced.get(v)})`).join(", ");
    return `${
      vias.length === 1 ? "The host address" : "Every host address"
    } bounced, so no host will answer: ${list}; check --via.`;
  }

  /** True once a host answered this node's request. */
  get answered(): boolean {
    return this.#repliedAt !== undefined;
  }

  /** The sentence for a wait that --timeout ended: what was still missing. */
  timeoutSentence(timeoutMs: number): string {
    const head = `No peer connected within ${span(timeoutMs)}`;
    const { vias } = this.opts;
    if (vias.length === 0) return `${head}; nobody asked or dialed this node.`;
    if (this.#repliedAt !== undefined) {
      return `${head}: ${this.#replyFrom} answered, but no listed peer could be reached and none dialed us; try again when the others are online.`;
    }
    const pending = vias.filter((v) => !this.bounced.has(v));
    if (this.#askedAt === undefined || pending.length === 0) {
      return `${head}; try again later or check --via.`;
    }
    return `${head}: ${pending.join(" and ")} never answered; check that ${
      pending.length === 1 ? "the host runs" : "a host runs"
    } with the same network key, and --via for typos.`;
  }

  /** Emits a "still waiting" event when one is due. */
  tick(): void {
    if (this.#linked) return;
    const now = this.#now();
    if (now - this.#lastReport < this.#every) return;
    this.#lastReport = now;
    const e = this.#describe(now);
    if (e) this.opts.emit(e);
  }

  #describe(now: number): NodeEvent | undefined {
    const { vias } = this.opts;
    if (vias.length === 0) {
      const since = now - this.#started;
      return {
        event: "waiting",
        for: "peer",
        since: Math.round(since / 1000),
        reason: `no one else is online yet: still waiting to be asked or dialed (${span(since)} so far)`,
      };
    }
    if (this.#repliedAt !== undefined) {
      const since = now - this.#repliedAt;
      if (this.#replyPeers === 0) {
        return {
          event: "waiting",
          for: "peer",
          since: Math.round(since / 1000),
          reason: `no one else is online yet (${this.#replyFrom} answered ${
            span(since)
          } ago); waiting for them`,
        };
      }
      return {
        event: "waiting",
        for: "peer",
        since: Math.round(since / 1000),
        reason: `still waiting for a peer to dial us (${this.#replyFrom} answered ${span(since)} ago)`,
      };
    }
    if (this.#askedAt === undefined) return undefined;
    const pending = vias.filter((v) => !this.bounced.has(v));
    if (pending.length === 0) return undefined;
    const since = now - this.#askedAt;
    const hint = since >= HOST_HINT_MS
      ? `; is ${pending.length === 1 ? "the host" : "a host"} running, with the same network key?`
      : "";
    return {
      event: "waiting",
      for: "reply",
      since: Math.round(since / 1000),
      reason: `still waiting for ${pending.join(" or ")} to answer (asked ${span(since)} ago)${hint}`,
    };
  }
}
