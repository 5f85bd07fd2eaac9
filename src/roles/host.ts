/**
 * The host (patent Fig. 3, 【0039】–【0047】): reads requests from its mailbox, keeps the peer table,
 * answers each requester with the most recent others, and flags peers reported unreachable.
 * Roles-level code: it knows messages and the table, not which mail transport is underneath.
 */
import type { Sender } from "../mail/smtp.ts";
import { sealToText } from "../protocol/envelope.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { NetworkKey } from "../protocol/keys.ts";
import type { Failure, Reply, Request } from "../protocol/messages.ts";
import { b64u, type Random, systemRandom } from "../protocol/bytes.ts";
import { freshness } from "../table/policy.ts";
import type { PeerTable } from "../table/table.ts";
import type { EventSink } from "./events.ts";
import type { Disposition, InboundMail } from "./inbox.ts";

export interface HostSettings {
  /** This host's own mailbox address: the From of its replies. */
  address: string;
  marker: string;
  /** Requests whose Date (or own time) is older than this are dropped (【0041】). */
  maxAgeMs: number;
  /** How far ahead of our clock a request's time may be. */
  skewMs: number;
}

export const DEFAULT_MAX_AGE_MS = 12 * 3600_000;
export const DEFAULT_SKEW_MS = 10 * 60_000;

export interface HostDeps {
  key: NetworkKey;
  table: PeerTable;
  sender: Sender;
  events: EventSink;
  clock?: () => number;
  random?: Random;
}

export class Host {
  #clock: () => number;
  #random: Random;

  constructor(readonly settings: HostSettings, readonly deps: HostDeps) {
    this.#clock = deps.clock ?? Date.now;
    this.#random = deps.random ?? systemRandom;
  }

  /** Whether this host handles a message of this kind (the rest is left for a peer role sharing the inbox). */
  wants(m: InboundMail): boolean {
    return m.message instanceof ProtocolError || m.message.kind === "request" || m.message.kind === "failure";
  }

  /** Handles one mail from the inbox; "delete" only once its effect is durable and its reply accepted. */
  async handle(m: InboundMail): Promise<Disposition> {
    const now = this.#clock();
    if (m.message instanceof ProtocolError) return this.#drop(m, m.message.message);
    // 【0041】: the mail's own Date says how long it has been on the way.
    if (m.mail.date && m.mail.date.getTime() < now - this.settings.maxAgeMs) {
      return this.#drop(m, `its Date (${m.mail.date.toISOString()}) is older than --max-age`);
    }
    const msg = m.message;
    if (msg.kind === "reply") return this.#drop(m, "it is a reply, and this host asked nothing");
    const fresh = freshness(msg.time, now, this.settings.maxAgeMs, this.settings.skewMs);
    if (fresh !== "ok") {
      return this.#drop(
        m,
        fresh === "old" ? "it was sealed longer ago than --max-age" : "it is dated in the future",
      );
    }
    const verdict = this.deps.table.checkNonce(
      b64u(msg.nonce),
      m.id,
      msg.time,
      now - this.settings.maxAgeMs - this.settings.skewMs,
    );
    if (verdict === "replay") return this.#drop(m, "its nonce was already used: a replayed request");
    return msg.kind === "request"
      ? await this.#request(msg, verdict === "retry", now, m.wokeAt)
      : this.#failure(msg);
  }

  async #request(req: Request, retry: boolean, now: number, wokeAt: number): Promise<Disposition> {
    const stored = this.deps.table.register({
      user: req.user,
      host: req.host,
      port: req.port,
      email: req.replyTo,
      linkKey: req.linkKey,
      flagged: false,
      stored: req.time,
    }, now);
    this.deps.events({
      event: "host_request",
      peer: req.user,
      address: `${req.host}:${req.port}`,
      outcome: retry ? "retry" : stored ? "stored" : "older",
    });
    // 【0043】【0045】: the most recent others, never the requester, never an e-mail address.
    const peers = this.deps.table.replyFor(req.user, now).map((e) => ({
      user: e.user,
      host: e.host,
      port: e.port,
      linkKey: e.linkKey,
      seen: e.stored,
      flagged: e.flagged,
    }));
    const reply: Reply = { kind: "reply", session: req.session, time: now, peers };
    await this.deps.sender.send({
      from: this.settings.address,
      to: [req.replyTo],
      subject: this.settings.marker,
      text: sealToText(this.deps.key, reply, this.#random),
    });
    this.deps.events({
      event: "host_reply",
      peer: req.user,
      peers: peers.length,
      ms: Math.round(performance.now() - wokeAt),
    });
    return "delete";
  }

  #failure(f: Failure): Disposition {
    // 【0047】: look the peer up by user id, not by address (addresses change; ids do not).
    const flagged = this.deps.table.flag(f.target);
    this.deps.events({ event: "host_failure", reporter: f.user, peer: f.target, flagged });
    return "delete";
  }

  #drop(m: InboundMail, reason: string): Disposition {
    this.deps.events({ event: "host_dropped", reason, detail: `mail ${m.id}` });
    return "delete";
  }
}
