/**
 * The host (patent Fig. 3, 【0039】–【0047】): reads requests from its mailbox, keeps the peer table,
 * answers each requester with the most recent others, and flags peers reported unreachable.
 * With other hosts (【0058】–【0061】, 【0065】) it also exchanges entries by sealed sync mail: with
 * hosts named beside it in a request's recipients, with its upstream hosts (chaining), and with a
 * host it bootstraps from. E-mail addresses of peers never leave it.
 * Roles-level code: it knows messages and the table, not which mail transport is underneath.
 */
import type { Sender } from "../mail/smtp.ts";
import type { MailPriority } from "../mail/budget.ts";
import { sealToText } from "../protocol/envelope.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { NetworkKey } from "../protocol/keys.ts";
import {
  type Failure,
  type Intro,
  MAX_HOPS,
  MAX_INTRO_PEERS,
  MAX_INTRO_WINDOW_MS,
  MAX_SYNC_ENTRIES,
  NONCE_BYTES,
  type PeerEntry,
  type Reply,
  type Request,
  type Sync,
} from "../protocol/messages.ts";
import { b64u, type Random, systemRandom } from "../protocol/bytes.ts";
import { byRecency, type TableEntry } from "../table/policy.ts";
import type { HostStorage } from "./host_storage.ts";
import type { EventSink } from "./events.ts";
import type { Disposition, InboundMail, Stall } from "./inbox.ts";
import { screen } from "./screen.ts";
import { deadline, DeadlineError, type Timers } from "../util/deadline.ts";
import { atMost } from "../util/at_most.ts";

export interface HostSettings {
  /** This host's own mailbox address: the From of its replies. */
  address: string;
  marker: string;
  /** Requests whose Date (or own time) is older than this are dropped (【0041】). */
  maxAgeMs: number;
  /** How far ahead of our clock a request's time may be. */
  skewMs: number;
  /** Hosts this one passes what it learns to, and whose entries it carries (chaining, 【0065】). */
  upstream?: readonly string[];
  /** How often to send known hosts our recent entries (0: never). */
  syncIntervalMs?: number;
  /** Peers of a reply that are also told of the newcomer by mail, most recent first (0: none). */
  introLimit?: number;
  /** How long an introduction asks the earlier peer to keep trying. */
  introWindowMs?: number;
  /**
   * Holds the requests the inbox hands out together for one round of replies, until it waits for
   * them (releaseReplies, InboxOptions.onStall). Without it a round starts as soon as the last
   * one's replies are sent, with whatever came meanwhile.
   */
  gatherReplies?: boolean;
}

export const DEFAULT_MAX_AGE_MS = 12 * 3600_000;
export const DEFAULT_SKEW_MS = 10 * 60_000;
export const DEFAULT_SYNC_INTERVAL_MS = 10 * 60_000;
/**
 * Introductions per join: enough that a newcomer meets the most recent members at once through
 * their NATs; the rest of the group it meets through those links. Each one is a mail from the
 * host's account (free accounts allow a few hundred a day).
 */
export const DEFAULT_INTRO_LIMIT = 8;
export const DEFAULT_INTRO_WINDOW_MS = 45_000;
/**
 * Introductions wait at most this long to be coalesced: a burst of newcomers (a LAN party
 * arriving, a mailbox read after a pause) mostly introduces the same few recent members, each of
 * whom gets one mail naming all of them instead of one mail per newcomer. Short beside the punch
 * window, and a pass that ends sends what it gathered at once (flushIntroductions).
 */
export const INTRO_COALESCE_MS = 1_000;
/** Introduction mails sent at once when a pass ends. */
const INTRO_SENDS_AT_ONCE = 2;
/**
 * Replies of one round sent at once: as many as the SMTP pool keeps connections (src/mail/smtp.ts),
 * each waiting for the server's answer while the other is on its way.
 */
const REPLY_SENDS_AT_ONCE = 2;
/**
 * Earlier members (answered before the newcomer's round) introduced to each newcomer at least,
 * even when its round mates fill the limit: a round is joined to the rest of the group through
 * more than one member, and peer exchange over those links does the rest.
 */
export const MIN_INTROS_OUTSIDE_ROUND = 2;
/**
 * Members of one round of replies at most: each reply names all its round mates and still
 * MIN_INTROS_OUTSIDE_ROUND earlier members, whom the round is then introduced to. A host's inbox
 * hands out this many at once: one more would be registered (and named as an earlier member)
 * before the round, yet answered after it.
 */
export function roundLimit(replyLimit: number): number {
  return Math.max(1, replyLimit + 1 - MIN_INTROS_OUTSIDE_ROUND);
}
/**
 * Members whose reply's list is remembered (to spare them introductions of peers it named). A
 * newcomer asks about them at most two rounds later; this is many rounds' worth.
 */
const LISTED_MEMORY = 1024;

export interface HostDeps {
  key: NetworkKey;
  /** The peer table (src/table/table.ts), behind what the role needs of it. */
  table: HostStorage;
  sender: Sender;
  events: EventSink;
  /** This node's own entry when it is a peer too (auto-promotion): offered first, always fresh. */
  self?: () => PeerEntry;
  /** A newcomer our own peer role should reach (auto-promotion: no mail to ourselves). */
  introduceSelf?: (intro: Intro) => void;
  /**
   * The node's mail budget (src/mail/budget.ts): asked before each mail, so a host near it skips
   * syncs, then introductions, and leaves requests in the box for later, rather than fail.
   */
  budget?: { allows(priority: MailPriority, recipients?: number): boolean; explain(): string };
  clock?: () => number;
  random?: Random;
  /** For the bootstrap's time limit (tests fire it by hand). */
  timers?: Timers;
}

/** What a reply lists, and the rows behind it (for the introductions). */
interface Offer {
  peers: PeerEntry[];
  rows: TableEntry[];
}

/** A request whose row is written, waiting for its round to have its reply composed and sent. */
interface Waiting {
  req: Request;
  done: PromiseWithResolvers<Offer>;
}

/** Introductions gathered for one mailbox: the newcomers, and which earlier peer each was for. */
interface PendingIntros {
  /** When the first of them was made. */
  time: number;
  peers: PeerEntry[];
  /** [earlier peer, newcomer] pairs, for the host_intro events once the mail went. */
  told: [string, string][];
}

/** The table could not be filled from another host (【0060】): no answer, or the sync could not be sent. */
export class BootstrapError extends Error {
  override name = "BootstrapError";
}

export class Host {
  #clock: () => number;
  #random: Random;
  #bootstrapped = Promise.withResolvers<void>();
  #bootstrapFrom?: string;
  /** Kinds of mail the budget holds back right now (said once each, not once per mail). */
  #holding = new Set<MailPriority>();
  /** Introductions not sent yet, by the earlier peer's mailbox (see INTRO_COALESCE_MS). */
  #intros = new Map<string, PendingIntros>();
  /** When the oldest of them was made. */
  #introsSince = 0;
  /** Requests waiting for the next round of replies (see #answer). */
  #waiting: Waiting[] = [];
  /** Replies promised (waiting or composed) but not handed to the sender yet: the budget counts them. */
  #unsent = 0;
  #rounding = false;
  /** The inbox's last stall, while it has handed out nothing since (gatherReplies). */
  #stall?: Stall;
  /** What each recent member's reply named, as `user link-key` (see #alreadyListed). */
  #listed = new Map<string, Set<string>>();

  constructor(readonly settings: HostSettings, readonly deps: HostDeps) {
    this.#clock = deps.clock ?? Date.now;
    this.#random = deps.random ?? systemRandom;
  }

  get address(): string {
    return this.settings.address;
  }

  /** Whether this host handles a message (the rest is left for a peer role sharing the inbox). */
  wants(m: InboundMail): boolean {
    return m.message instanceof ProtocolError || m.message.kind !== "reply";
  }

  /** Handles one mail from the inbox; "delete" only once its effect is durable and its reply accepted. */
  async handle(m: InboundMail): Promise<Disposition> {
    // The inbox is handing out mail again: a round may wait for what it brings.
    this.#stall = undefined;
    const now = this.#clock();
    const s = screen(m, this.deps.table, this.settings, now);
    if (!s.ok) {
      this.#drop(m, s.reason);
      return m.message instanceof ProtocolError ? "quarantine" : "delete";
    }
    if (s.seen === "answered") {
      this.deps.events({
        event: "host_dropped",
        reason: `its ${s.message.kind} was answered before a restart; deleted without answering again`,
        detail: `mail ${m.id}`,
      });
      return "delete";
    }
    switch (s.message.kind) {
      case "request": {
        const d = await this.#request(s.message, m, s.nonce, s.seen === "retry", now);
        if (this.#intros.size > 0 && this.#clock() - this.#introsSince >= INTRO_COALESCE_MS) {
          await this.flushIntroductions();
        }
        return d;
      }
      case "failure":
        return this.#failure(s.message, s.nonce, now);
      case "sync": {
        const d = await this.#sync(s.message, now);
        // Learning is idempotent and done by now; noting it lets a restart skip the answers it sent.
        this.deps.table.settle(s.nonce, now, () => {});
        return d;
      }
      case "leave": {
        const leave = s.message;
        const gone = this.deps.table.settle(
          s.nonce,
          now,
          () => this.deps.table.forget(leave.user, leave.linkKey),
        );
        this.deps.events({ event: "host_leave", peer: leave.user, forgotten: gone });
        return "delete";
      }
    }
  }

  async #request(
    req: Request,
    m: InboundMail,
    nonce: string,
    retry: boolean,
    now: number,
  ): Promise<Disposition> {
    if (req.probe) {
      if (!this.#affords("reply", `${req.user}'s probe waits in the mailbox`)) return "later";
      return await this.#answerProbe(req, m, nonce, now);
    }
    const entry: TableEntry = {
      user: req.user,
      host: req.host,
      port: req.port,
      email: req.replyTo,
      linkKey: req.linkKey,
      flagged: false,
      stored: req.time,
      origin: "",
      candidates: req.candidates,
      mapping: req.mapping,
      relay: req.relay,
      role: req.role,
    };
    // A re-announce (quiet: its sender is linked) needs its row kept, not an answer: near the
    // budget its reply is skipped like a sync. A newcomer's request waits for the budget instead.
    const answer = req.quiet
      ? this.#affords("sync", `no reply to ${req.user}'s re-announce (its row is kept)`)
      : this.#affords("reply", `${req.user}'s request waits in the mailbox`);
    if (!answer && !req.quiet) return "later";
    // The row is written at once, and the reply composed only when its round comes (#answer):
    // requests the inbox handles meanwhile (a host answers a few at once) list this one, and this
    // reply lists them. The note "answered" is written once SMTP accepted the reply: a crash
    // between the two repeats at most the replies then on their way (the rows are written again,
    // the same), and a restart deletes what was answered without answering it again.
    const stored = this.deps.table.register(entry, now);
    const { peers, rows } = answer ? await this.#answer(req) : { peers: [], rows: [] };
    this.deps.table.settle(nonce, now, () => {});
    this.deps.events({
      event: "host_request",
      peer: req.user,
      address: `${req.host}:${req.port}`,
      outcome: retry ? "retry" : stored ? "stored" : "older",
    });
    if (answer) {
      this.deps.events({
        event: "host_reply",
        peer: req.user,
        peers: peers.length,
        ms: Math.round(performance.now() - m.wokeAt),
      });
    }
    // Best effort, once: a retry after a crash re-sends the reply but not the introductions.
    if (!req.quiet && !retry) await this.#introduce(toPeerEntry(entry), peers, rows, now);
    // 【0059】: the other hosts a peer mailed at once are hosts of the same group: exchange tables.
    // These syncs come after the note "answered": one lost to a crash is made good by the
    // periodic sync (runSync), which is cheaper than answering the request twice.
    const me = this.settings.address;
    for (const other of m.mail.recipients) {
      if (other === me || this.settings.upstream?.includes(other)) continue;
      if (this.deps.table.addHost(other, now)) {
        this.deps.events({ event: "info", message: `learned of host ${other} from ${req.user}'s request` });
        await this.#sendSync(other, this.#recent(now), false, [me]);
      }
    }
    // 【0065】: pass the newcomer upward, unless it asked that host itself (or sent it to us).
    if (stored && !retry) {
      const up = (this.settings.upstream ?? []).filter((h) =>
        !m.mail.recipients.includes(h) && h !== req.replyTo && h !== m.mail.from
      );
      const hops = m.mail.hops ?? 0;
      for (const h of up) {
        // A first request goes up as it came, so the upstream host answers the newcomer itself
        // from its own, fresher table and introduces it to its members: a chain no longer answers
        // only from what it was told at its own join (issue 10). The sealed nonce ends loops (a
        // host that saw it drops it as a replay); the hop count bounds a chain. A re-announce
        // needs no answer: a sync keeps the upstream's row fresh for one mail instead of two.
        if (req.quiet || hops >= MAX_HOPS) await this.#sendSync(h, [toPeerEntry(entry)], false, [me]);
        else await this.#passUp(h, m, req.user, hops + 1);
      }
    }
    return "delete";
  }

  /**
   * Answers `req` in the next round of replies. Requests that come while a round is on its way are
   * answered together in the next: each reply is composed when its round starts, after every row of
   * the round is written, so its members list each other (and all of them find one another without
   * an introduction, see #introduce). A burst of newcomers then costs about one mail each instead
   * of two; a request alone is answered as soon as the inbox has nothing more to hand out.
   */
  #answer(req: Request): Promise<Offer> {
    const done = Promise.withResolvers<Offer>();
    this.#waiting.push({ req, done });
    this.#unsent++;
    this.#startRounds();
    return done.promise;
  }

  /**
   * The inbox waits for its handlers (InboxOptions.onStall). When all it waits for are requests
   * held here, or no more mail is coming, they have their round now; otherwise another handler
   * will finish and the inbox hand out more (and say so again), so the round can grow.
   */
  releaseReplies(stall: Stall): void {
    this.#stall = stall;
    this.#startRounds();
  }

  /** Whether the waiting requests may have their round now (see gatherReplies). */
  #roundReady(): boolean {
    if (this.#waiting.length === 0) return false;
    if (!this.settings.gatherReplies) return true;
    const stall = this.#stall;
    return stall !== undefined &&
      (!stall.more || this.#waiting.length >= Math.min(stall.working, this.#roundLimit()));
  }

  #roundLimit(): number {
    return roundLimit(this.deps.table.policy.replyLimit);
  }

  #startRounds(): void {
    if (this.#rounding || !this.#roundReady()) return;
    this.#rounding = true;
    void this.#runRounds();
  }

  /** Rounds while one is ready; the flag drops in the same turn as the last look (none is stranded). */
  async #runRounds(): Promise<void> {
    for (;;) {
      if (!this.#roundReady()) {
        this.#rounding = false;
        return;
      }
      const round = this.#waiting.splice(0, this.#roundLimit());
      const now = this.#clock();
      // All composed before any is sent: a round's members list each other, first — they asked
      // just now, whatever times their own clocks put in their requests.
      const composed: (Waiting & Offer)[] = [];
      const mates = round.length > 1 ? this.#rowsOf(round) : [];
      for (const w of round) {
        try {
          const offer = this.#offer(w.req.user, now, mates);
          composed.push({ ...w, ...offer });
          // Noted before any is sent: a round mate whose reply is accepted first introduces
          // itself to none of those that named it (#introduce).
          this.#noteListed(w.req.user, offer.peers);
        } catch (err) {
          this.#unsent--;
          w.done.reject(err);
        }
      }
      await atMost(REPLY_SENDS_AT_ONCE, composed, async (w) => {
        const { peers, rows } = w;
        // Handed to the sender in the same turn: from here the budget counts it as on its way.
        this.#unsent--;
        try {
          await this.#mail([w.req.replyTo], { kind: "reply", session: w.req.session, time: now, peers });
          w.done.resolve({ peers, rows });
        } catch (err) {
          // Its request stays in the box; the reply to its retry will name those it missed.
          this.#listed.delete(w.req.user);
          w.done.reject(err);
        }
      });
    }
  }

  /** The rows of a round's requests as stored (a row another request replaced is left out), newest first. */
  #rowsOf(round: readonly Waiting[]): TableEntry[] {
    const rows: TableEntry[] = [];
    for (const { req } of round) {
      const row = this.deps.table.get(req.user);
      if (row && b64u(row.linkKey) === b64u(req.linkKey)) rows.push(row);
    }
    return rows.sort(byRecency);
  }

  /** Remembers whom `member`'s reply named (the last LISTED_MEMORY members). */
  #noteListed(member: string, peers: readonly PeerEntry[]): void {
    this.#listed.delete(member);
    this.#listed.set(member, new Set(peers.map((p) => `${p.user} ${b64u(p.linkKey)}`)));
    if (this.#listed.size > LISTED_MEMORY) this.#listed.delete(this.#listed.keys().next().value!);
  }

  /** Whether `member`'s last reply named this run of `newcomer`: then it dials it already. */
  #alreadyListed(member: string, newcomer: PeerEntry): boolean {
    return this.#listed.get(member)?.has(`${newcomer.user} ${b64u(newcomer.linkKey)}`) ?? false;
  }

  /** The request mail, unchanged but for the hop count, to an upstream host. */
  async #passUp(to: string, m: InboundMail, user: string, hops: number): Promise<void> {
    if (!this.#affords("reply", `${user}'s request is not passed up to ${to}`)) return;
    await this.deps.sender.send({
      priority: "reply",
      from: this.settings.address,
      to: [to],
      subject: this.settings.marker,
      text: m.mail.text,
      headers: { "X-Mailmeet-Hops": String(hops) },
    });
    this.deps.events({ event: "mail_sent", kind: "forward", recipients: 1 });
    this.deps.events({ event: "info", message: `passed ${user}'s request up to ${to}` });
  }

  /** `doctor` asks: answered like a request, but never stored, introduced or passed on. */
  async #answerProbe(req: Request, m: InboundMail, nonce: string, now: number): Promise<Disposition> {
    const { peers } = this.#offer(req.user, now);
    await this.#mail([req.replyTo], { kind: "reply", session: req.session, time: now, peers });
    this.deps.table.settle(nonce, now, () => {});
    this.deps.events({
      event: "host_reply",
      peer: req.user,
      peers: peers.length,
      ms: Math.round(performance.now() - m.wokeAt),
    });
    return "delete";
  }

  #failure(f: Failure, nonce: string, now: number): Disposition {
    // 【0047】: look the peer up by user id, not by address (addresses change; ids do not) — and
    // only while the row is still the run the reporter tried (a restarted peer is alive).
    const flagged = this.deps.table.settle(nonce, now, () => {
      const row = f.targetKey ? this.deps.table.get(f.target) : undefined;
      const stale = f.targetKey !== undefined && row !== undefined && b64u(row.linkKey) !== b64u(f.targetKey);
      return stale ? false : this.deps.table.flag(f.target);
    });
    this.deps.events({ event: "host_failure", reporter: f.user, peer: f.target, flagged });
    return "delete";
  }

  async #sync(msg: Sync, now: number): Promise<Disposition> {
    const me = this.settings.address;
    if (msg.host === me) return "delete";
    const selfUser = this.deps.self?.().user;
    const learned: PeerEntry[] = [];
    for (const e of msg.entries) {
      if (e.user === selfUser) continue; // we know where we are better than anyone
      if (this.deps.table.learn(fromPeerEntry(e, msg.host), now)) learned.push(e);
    }
    const isNewHost = this.deps.table.addHost(msg.host, now);
    this.deps.table.markSynced(msg.host, now);
    this.deps.events({
      event: "info",
      message: `sync from ${msg.host}: ${learned.length} of ${msg.entries.length} entries new${
        isNewHost ? " (a new host)" : ""
      }`,
    });
    if (msg.host === this.#bootstrapFrom) this.#bootstrapped.resolve();
    if (msg.want) await this.#sendSync(msg.host, this.#recent(now), false, [me]);
    // Chaining: what we learned goes on upward, never back where it has been, never too far.
    const visited = [...msg.visited, me];
    if (learned.length > 0 && visited.length <= MAX_HOPS) {
      for (const h of this.settings.upstream ?? []) {
        if (!visited.includes(h) && h !== msg.host) await this.#sendSync(h, learned, false, visited);
      }
    }
    return "delete";
  }

  /**
   * Asks `address` for its table (【0060】: a new host fills its table from an existing one).
   * Resolves when the answer has been stored, or rejects after `timeoutMs`.
   */
  async bootstrap(address: string, timeoutMs: number): Promise<void> {
    this.#bootstrapFrom = address.toLowerCase();
    this.deps.table.addHost(this.#bootstrapFrom, this.#clock());
    await this.#sendSync(this.#bootstrapFrom, this.#recent(this.#clock()), true, [this.settings.address]);
    try {
      await deadline(this.#bootstrapped.promise, timeoutMs, { timers: this.deps.timers });
    } catch (err) {
      if (!(err instanceof DeadlineError)) throw err;
      throw new Error(`${address} did not answer the bootstrap within ${Math.round(timeoutMs / 1000)} s`);
    }
  }

  /**
   * 【0060】 A new host fills its table from `from` before answering anyone: it reads only syncs
   * from its mailbox (everything else stays there for later) until `from`'s answer is stored.
   * Rejects after `timeoutMs`, or when `stop` aborts.
   */
  async fillFrom(
    from: string,
    timeoutMs: number,
    inbox: { run(signal: AbortSignal, handle: (m: InboundMail) => Promise<Disposition>): Promise<void> },
    stop: AbortSignal,
  ): Promise<void> {
    const booting = new AbortController();
    const reading = inbox.run(
      AbortSignal.any([stop, booting.signal]),
      (m) =>
        !(m.message instanceof ProtocolError) && m.message.kind === "sync"
          ? this.handle(m)
          : Promise.resolve("later"),
    );
    try {
      await Promise.race([
        this.bootstrap(from, timeoutMs).catch((err) => {
          throw new BootstrapError((err as Error).message, { cause: err });
        }),
        // Reading ends early only when stopped (the caller knows) or when the mailbox failed
        // (that error, as it is, is the answer).
        reading.then(() => {
          throw new BootstrapError("stopped before the answer came");
        }),
      ]);
    } finally {
      booting.abort();
      await reading.catch(() => {});
    }
  }

  /** Sends every known host and upstream host our recent entries (periodic convergence, 【0061】). */
  async syncAll(): Promise<void> {
    const now = this.#clock();
    const entries = this.#recent(now);
    const targets = new Set([
      ...this.deps.table.hosts().map((h) => h.address),
      ...(this.settings.upstream ?? []),
    ]);
    for (const h of targets) {
      if (h === this.settings.address) continue;
      try {
        await this.#sendSync(h, entries, false, [this.settings.address]);
      } catch (err) {
        this.deps.events({ event: "error", message: `Could not sync with ${h}: ${(err as Error).message}` });
      }
    }
  }

  /** Runs syncAll every syncIntervalMs until `signal` aborts. */
  async runSync(signal: AbortSignal): Promise<void> {
    const every = this.settings.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS;
    if (every <= 0) return;
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, every);
        signal.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
      if (!signal.aborted) await this.syncAll();
    }
  }

  /** Entries learned elsewhere (the node's own rendezvous reply from its upstream). */
  learnFrom(origin: string, entries: readonly PeerEntry[]): number {
    const now = this.#clock();
    const selfUser = this.deps.self?.().user;
    let n = 0;
    for (const e of entries) {
      if (e.user !== selfUser && this.deps.table.learn(fromPeerEntry(e, origin), now)) n++;
    }
    return n;
  }

  /**
   * 【0043】【0045】: the most recent others, never the requester, never an e-mail address; `first`
   * (the requester's round mates) before the rest.
   */
  #offer(requester: string, now: number, first: readonly TableEntry[] = []): Offer {
    const self = this.deps.self?.();
    const mates = first.filter((e) => e.user !== requester && e.user !== self?.user);
    const named = new Set(mates.map((e) => e.user));
    const rows = [
      ...mates,
      ...this.deps.table.replyFor(requester, now).filter((e) => e.user !== self?.user && !named.has(e.user)),
    ].slice(0, this.deps.table.policy.replyLimit);
    const peers = rows.map(toPeerEntry);
    if (self && self.user !== requester) {
      peers.unshift(self);
      if (peers.length > this.deps.table.policy.replyLimit) peers.pop();
    }
    return { peers, rows };
  }

  /**
   * Introduces the newcomer to each of the most recent listed peers that registered here (we hold
   * its address), so both reach out at once (design: "Introductions"). Flagged and relay-only
   * peers are skipped; our own peer role hears it at once, without mail. The mails are gathered
   * by mailbox and sent by flushIntroductions: a burst of newcomers costs one mail per earlier
   * peer, not one per newcomer and peer.
   */
  async #introduce(newcomer: PeerEntry, listed: PeerEntry[], rows: TableEntry[], now: number): Promise<void> {
    const limit = this.settings.introLimit ?? DEFAULT_INTRO_LIMIT;
    if (limit <= 0 || newcomer.role === "relay") return;
    const selfUser = this.deps.self?.().user;
    // Round mates (answered after the newcomer came) count toward the limit, which is about the
    // most recent members; past it, earlier members are still told up to the minimum.
    const minOutside = Math.min(limit, MIN_INTROS_OUTSIDE_ROUND);
    let sent = 0;
    let outside = 0;
    for (const p of listed) {
      if (sent >= limit && outside >= minOutside) break;
      if (p.flagged || p.role === "relay") continue;
      if (p.user === selfUser) {
        this.deps.introduceSelf?.({
          kind: "intro",
          peers: [newcomer],
          time: now,
          nonce: this.#random(NONCE_BYTES),
          window: this.#window(),
        });
        sent++;
        outside++;
        continue;
      }
      const row = rows.find((r) => r.user === p.user);
      if (!row || row.email === "" || row.origin !== "") continue;
      // Answered in the same round, or later: its reply named the newcomer, and it dials already.
      if (this.#alreadyListed(p.user, newcomer)) {
        sent++;
        continue;
      }
      outside++;
      const to = row.email.toLowerCase();
      if (this.#intros.size === 0) this.#introsSince = now;
      let pending = this.#intros.get(to);
      if (!pending) this.#intros.set(to, pending = { time: now, peers: [], told: [] });
      // A newcomer asking twice in one burst is introduced as it asked last.
      const i = pending.peers.findIndex((e) => e.user === newcomer.user);
      if (i >= 0) pending.peers.splice(i, 1);
      pending.peers.push(newcomer);
      pending.told.push([p.user, newcomer.user]);
      sent++;
      if (pending.peers.length >= MAX_INTRO_PEERS) await this.#sendIntros(to, pending);
    }
  }

  /**
   * Sends the introductions gathered so far, one mail per earlier peer's mailbox. The inbox calls
   * it when a pass ends; a long pass also sends every INTRO_COALESCE_MS.
   */
  async flushIntroductions(): Promise<void> {
    const all = [...this.#intros];
    this.#intros.clear();
    // As many at once as the SMTP pool keeps connections (src/mail/smtp.ts): each mail waits for
    // the server's answer, and the other connection would idle meanwhile.
    await atMost(INTRO_SENDS_AT_ONCE, all, ([to, pending]) => this.#sendIntros(to, pending));
  }

  async #sendIntros(to: string, pending: PendingIntros): Promise<void> {
    this.#intros.delete(to);
    const names = pending.peers.map((p) => p.user).join(", ");
    // The newcomers have their replies and dial; introductions only help them through NATs sooner.
    if (!this.#affords("intro", `no more introductions (of ${names})`)) return;
    try {
      await this.#mail([to], {
        kind: "intro",
        peers: pending.peers,
        time: pending.time,
        nonce: this.#random(NONCE_BYTES),
        // The last newcomer of the burst (introduced by now at the latest) keeps trying a whole window too.
        window: Math.min(MAX_INTRO_WINDOW_MS, this.#window() + Math.max(0, this.#clock() - pending.time)),
      });
      for (const [peer, newcomer] of pending.told) this.deps.events({ event: "host_intro", peer, newcomer });
    } catch (err) {
      this.deps.events({
        event: "error",
        message: `Could not introduce ${names} to ${to}: ${(err as Error).message}`,
      });
    }
  }

  #window(): number {
    return this.settings.introWindowMs ?? DEFAULT_INTRO_WINDOW_MS;
  }

  #recent(now: number): PeerEntry[] {
    const self = this.deps.self?.();
    const rows = this.deps.table.entries(now, MAX_SYNC_ENTRIES).map(toPeerEntry);
    return self ? [self, ...rows.filter((e) => e.user !== self.user)].slice(0, MAX_SYNC_ENTRIES) : rows;
  }

  async #sendSync(to: string, entries: PeerEntry[], want: boolean, visited: string[]): Promise<void> {
    // A skipped sync is made good by the next periodic one, if the budget allows it then.
    if (!this.#affords("sync", `no sync to ${to}`)) return;
    const msg: Sync = {
      kind: "sync",
      host: this.settings.address,
      entries,
      want,
      visited,
      time: this.#clock(),
      nonce: this.#random(NONCE_BYTES),
    };
    await this.#mail([to], msg);
    this.deps.table.markSynced(to, this.#clock());
  }

  /** Whether the budget lets one more mail of this kind go; says once per kind what it holds back. */
  #affords(priority: MailPriority, what: string): boolean {
    // Replies promised to requests but not sent yet (#answer) will count when they go.
    if (this.deps.budget?.allows(priority, 1 + this.#unsent) ?? true) {
      this.#holding.delete(priority);
      return true;
    }
    if (!this.#holding.has(priority)) {
      this.#holding.add(priority);
      this.deps.events({
        event: "budget_held",
        kind: priority,
        message: `${what}: ${this.deps.budget!.explain()}${
          this.#unsent > 0
            ? `, and ${this.#unsent} ${this.#unsent === 1 ? "reply is" : "replies are"} about to go`
            : ""
        }`,
      });
    }
    return false;
  }

  async #mail(to: string[], msg: Reply | Sync | Intro): Promise<void> {
    await this.deps.sender.send({
      priority: msg.kind === "reply" ? "reply" : msg.kind,
      from: this.settings.address,
      to,
      subject: this.settings.marker,
      text: sealToText(this.deps.key, msg, this.#random),
    });
    this.deps.events({ event: "mail_sent", kind: msg.kind, recipients: to.length });
  }

  #drop(m: InboundMail, reason: string): Disposition {
    this.deps.events({ event: "host_dropped", reason, detail: `mail ${m.id}` });
    return "delete";
  }
}

export function toPeerEntry(e: TableEntry): PeerEntry {
  return {
    user: e.user,
    host: e.host,
    port: e.port,
    linkKey: e.linkKey,
    seen: e.stored,
    flagged: e.flagged,
    // A row from an older mailmeet knows one TCP address.
    candidates: e.candidates ?? [{ kind: "advertised", transport: "tcp", host: e.host, port: e.port }],
    mapping: e.mapping ?? "unknown",
    relay: e.relay ?? false,
    role: e.role ?? "peer",
  };
}

function fromPeerEntry(e: PeerEntry, origin: string): TableEntry {
  return {
    user: e.user,
    host: e.host,
    port: e.port,
    email: "",
    linkKey: e.linkKey,
    flagged: e.flagged,
    stored: e.seen,
    origin,
    candidates: e.candidates,
    mapping: e.mapping,
    relay: e.relay,
    role: e.role,
  };
}
