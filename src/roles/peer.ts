/**
 * The peer (patent Fig. 2, 【0023】–【0038】): announce itself to its host(s) with a sealed request,
 * take the reply whose session id matches, reach the peers it lists (all at once, every path each),
 * report the ones that cannot be reached, and keep accepting peers that come later. Beyond the
 * patent: a host's introduction ("this newcomer is on its way") makes an earlier peer reach out
 * too, which is what gets two peers behind home routers through to each other.
 */
import type { Sender } from "../mail/smtp.ts";
import { sealToText } from "../protocol/envelope.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { NetworkKey } from "../protocol/keys.ts";
import { formatHostPort, type PathKind } from "../protocol/candidate.ts";
import {
  type Failure,
  type Intro,
  type Leave,
  NONCE_BYTES,
  type PeerEntry,
  type Reachability,
  type Request,
  SESSION_BYTES,
} from "../protocol/messages.ts";
import { equalBytes, type Random, systemRandom } from "../protocol/bytes.ts";
import { rankCandidates } from "../table/policy.ts";
import { type EventSink, shortHex } from "./events.ts";
import type { Disposition, InboundMail } from "./inbox.ts";
import { atMost } from "../util/at_most.ts";

/** How a link reaches its member. */
export interface LinkRoute {
  path: "direct" | "relay";
  transport: "tcp" | "quic";
  kind: PathKind;
  /** One round trip, ms (measured by the handshake). */
  rttMs: number;
}

/**
 * A peer we hold a link to, as the roles see it: who it is, how it was reached, when the link ends
 * (src/roles/net_dialer.ts wraps the real Link of src/net).
 */
export interface LinkedPeer {
  /** The other side's user id, learned inside the authenticated handshake. */
  readonly user: string;
  /** "ip:port" of the other side ("via NAME" through a relay). */
  readonly address: string;
  readonly direction: "out" | "in";
  readonly route: LinkRoute;
  /** Resolves when the link has ended, with the reason if it failed. */
  readonly closed: Promise<string | undefined>;
  close(): Promise<void>;
}

/** What this node publishes about how to reach it (for requests and the host's own entry). */
export type Reach = Reachability & { host: string; port: number };

/**
 * The roles' port to the network: dials a peer a host listed, and tells our link key and reach to
 * publish. Tests pass a fake; the node passes NetPeerDialer (src/roles/net_dialer.ts).
 */
export interface PeerDialer {
  /** Our link public key for this run, published through the host. */
  readonly publicKey: Uint8Array;
  /** Our addresses as they are now. */
  reach(): Reach;
  /** Reaches `entry` over the best path before `deadline` (ms since the epoch); rejects with one sentence. */
  dial(entry: PeerEntry, deadline: number, opts?: DialOptions): Promise<LinkedPeer>;
}

export interface DialOptions {
  /** Aborted when the peer stops: the dial gives up at once. */
  signal?: AbortSignal;
  /**
   * TCP attempts wait for this and run only if it says true; punching (which needs both sides to
   * start at about the same time) starts at once.
   */
  tcpWhen?: Promise<boolean>;
}

/** The node's links, one per member (src/node keeps them; roles only hand links over). */
export interface LinkSet {
  /** Takes a new link; false when a better one to the same member is kept instead. */
  adopt(link: LinkedPeer): boolean;
  has(user: string): boolean;
  readonly size: number;
}

export interface PeerSettings {
  /** Our own e-mail address: the From of our mail, and where replies come. */
  address: string;
  user: string;
  /** Host mailbox address(es) to ask: one message goes to all of them. */
  vias: string[];
  marker: string;
  friends: ReadonlySet<string>;
  blocked: ReadonlySet<string>;
  /** How long we keep trying to reach a peer a reply listed (covers mail arriving late on its side). */
  dialWindowMs: number;
  /** At most this many peers of one reply are reached by dialing (the rest of the room comes to us). */
  maxLinks: number;
  /** Overrides INTRO_DIAL_DELAY_MS (tests). */
  introDelayMs?: number;
  /** A reply to someone else is deleted once older than this (--max-age). */
  maxAgeMs?: number;
  /** `doctor`: ask whether hosts answer, without entering their tables. */
  probe?: boolean;
  /** While linked, reannounce() mails at most this often (default LINKED_REANNOUNCE_MS). */
  linkedReannounceMs?: number;
}

export interface PeerDeps {
  key: NetworkKey;
  sender: Sender;
  dialer: PeerDialer;
  links: LinkSet;
  events: EventSink;
  /** The peers a host's reply listed, and which host said so (an auto-promoted host learns from it). */
  onPeers?: (peers: readonly PeerEntry[], via: string) => void;
  /** A newcomer a host introduced. */
  onIntro?: (peer: PeerEntry, via: string) => void;
  clock?: () => number;
  random?: Random;
}

/** Dials running at once (each tries all of a peer's paths in parallel itself). */
const PARALLEL_DIALS = 8;
/** Later replies to the same request (other hosts, upstream hosts) are taken for this long. */
const LATER_REPLIES_MS = 5 * 60_000;
/** Replies to other processes on the same inbox are left alone for this long (like --max-age). */
const DEFAULT_REPLY_MAX_AGE_MS = 12 * 3600_000;
/** After this long without a link, say we are waiting (the dials go on in the background). */
const FIRST_CHANCE_MS = 5_000;
/** An introduction that came too late makes us ask the hosts again, but not more often than this. */
const REASK_AFTER_LATE_INTRO_MS = 60_000;
/**
 * The introduced side waits this long before it dials: the newcomer got its reply at the same
 * moment and dials too, and where the newcomer can reach us its dial has won by then — one link,
 * no second one to close. Punching still overlaps: the newcomer keeps at it for its whole window.
 */
export const INTRO_DIAL_DELAY_MS = 1_000;
/**
 * A linked node leaves re-announcing to its links (design: "mail only when it has no link"), but
 * renews its host row this often so it never expires (--ttl, 12 h by default) and newcomers are
 * still told of it when the member they reach first has left.
 */
export const LINKED_REANNOUNCE_MS = 6 * 3600_000;

export class Peer {
  #clock: () => number;
  #random: Random;
  #session?: Uint8Array;
  /** When the first reply to the current request came (later ones are taken for a while). */
  #answeredAt?: number;
  #dialing = new Set<Promise<void>>();
  /** Users being dialled right now: a second reason to dial them joins the first. */
  #inFlight = new Map<string, Promise<void>>();
  #lastReask = 0;
  #lastAnnounce?: number;
  #closed = false;
  readonly #stop = new AbortController();

  constructor(readonly settings: PeerSettings, readonly deps: PeerDeps) {
    this.#clock = deps.clock ?? Date.now;
    this.#random = deps.random ?? systemRandom;
  }

  /** Settles when the dials started so far have all been tried. */
  get dialing(): Promise<void> {
    return Promise.allSettled([...this.#dialing]).then(() => {});
  }

  /** Sends one request to every --via host (one mail, several recipients: 【0058】). */
  async announce(): Promise<Request> {
    const s = this.settings;
    this.#session = this.#random(SESSION_BYTES);
    this.#answeredAt = undefined;
    this.#lastAnnounce = this.#clock();
    const reach = this.deps.dialer.reach();
    const req: Request = {
      kind: "request",
      user: s.user,
      ...reach,
      session: this.#session,
      linkKey: this.deps.dialer.publicKey,
      time: this.#clock(),
      nonce: this.#random(NONCE_BYTES),
      replyTo: s.address,
      // Linked already: only stay in the tables; the links carry the rest.
      quiet: this.deps.links.size > 0,
      probe: s.probe ?? false,
    };
    await this.deps.sender.send({
      from: s.address,
      to: s.vias,
      subject: s.marker,
      text: sealToText(this.deps.key, req, this.#random),
    });
    this.deps.events({ event: "mail_sent", kind: "request", recipients: s.vias.length });
    this.deps.events({ event: "request_sent", via: s.vias, session: shortHex(this.#session) });
    return req;
  }

  /**
   * The periodic re-announce (--reannounce): a node with no link asks again; a linked one is kept
   * in the group by its links and mails only to keep its host row alive. Undefined when skipped.
   */
  async reannounce(): Promise<Request | undefined> {
    const keepalive = this.settings.linkedReannounceMs ?? LINKED_REANNOUNCE_MS;
    if (this.deps.links.size > 0 && this.#lastAnnounce !== undefined) {
      if (this.#clock() - this.#lastAnnounce < keepalive) return undefined;
    }
    return await this.announce();
  }

  /**
   * A node coming back first dials the members it was linked to when it last ran: members online
   * for hours keep their addresses, and one link is enough (peer exchange brings the rest). Its
   * request then goes quiet — no introductions, and a reply only while the host's budget allows
   * syncs — so a group with members dropping in and out all day does not spend its host's budget
   * on returns. True when a link is up.
   */
  async comeBack(remembered: readonly PeerEntry[], windowMs: number): Promise<boolean> {
    const others = remembered.filter((p) => p.user !== this.settings.user && p.role !== "relay");
    if (others.length === 0) return false;
    this.deps.events({
      event: "info",
      message: `trying the ${others.length} member(s) we were linked to last time before asking by mail`,
    });
    const deadline = this.#clock() + windowMs;
    const ranked = rankCandidates(others, { friends: this.settings.friends, blocked: this.settings.blocked })
      .slice(0, this.settings.maxLinks);
    // The first link is enough to go on: the dials to members that left (their address is gone with
    // their last run) keep trying in the background rather than hold up the (quiet) request.
    const linked = Promise.withResolvers<void>();
    const dials = Promise.all(ranked.map((e) =>
      this.#dial(e, "", deadline, false).then(() => {
        if (this.deps.links.size > 0) linked.resolve();
      })
    ));
    this.#track(dials.then(() => {}));
    await Promise.race([dials, linked.promise]);
    return this.deps.links.size > 0;
  }

  wants(m: InboundMail): boolean {
    return !(m.message instanceof ProtocolError) &&
      (m.message.kind === "reply" || m.message.kind === "intro");
  }

  /** Takes a reply or an introduction from the inbox. */
  handle(m: InboundMail): Disposition {
    if (m.message instanceof ProtocolError) {
      this.deps.events({ event: "reply_ignored", reason: m.message.message });
      return "quarantine";
    }
    if (m.message.kind === "intro") return this.introduce(m.message, m.mail.from ?? "a host");
    const reply = m.message;
    if (reply.kind !== "reply") return "keep";
    // 【0066】: a reply that does not echo our session id is not an answer to us. It may be the
    // answer to another process on this inbox (another user id, another config): left for its
    // owner, and deleted only once it is too old to matter to anyone.
    if (!this.#session || !equalBytes(reply.session, this.#session)) {
      const date = m.mail.date?.getTime();
      const stale = date !== undefined &&
        date < this.#clock() - (this.settings.maxAgeMs ?? DEFAULT_REPLY_MAX_AGE_MS);
      this.deps.events({
        event: "reply_ignored",
        reason: `its session id does not match our request${
          stale ? "; it is old: deleted" : "; left for its owner"
        }`,
      });
      return stale ? "delete" : "keep";
    }
    // Several hosts may answer one request (all --via hosts, and upstream hosts a request was
    // passed on to): each adds what it knows, for a while; after that a reply is a replay.
    if (this.#answeredAt !== undefined && this.#clock() - this.#answeredAt > LATER_REPLIES_MS) {
      this.deps.events({
        event: "reply_ignored",
        reason: "it answers a request answered long ago",
      });
      return "delete";
    }
    this.#answeredAt ??= this.#clock();
    const via = m.mail.from ?? this.settings.vias[0];
    this.deps.events({
      event: "reply",
      from: via,
      peers: reply.peers.length,
      session: shortHex(reply.session),
    });
    // Never dial ourselves, even if a host lists us (an old row after a user-id reuse).
    const others = reply.peers.filter((p) => p.user !== this.settings.user);
    this.deps.onPeers?.(others, via);
    this.#track(this.#dialAll(others, via));
    return "delete";
  }

  /** An earlier peer hears of newcomers: reach out too, so both NATs open towards each other. */
  introduce(intro: Intro, via: string): Disposition {
    const deadline = intro.time + intro.window;
    let late = false;
    for (const p of intro.peers) {
      if (p.user === this.settings.user || this.settings.blocked.has(p.user)) continue;
      this.deps.events({ event: "introduced", peer: p.user, via });
      this.deps.onIntro?.(p, via);
      if (this.deps.links.has(p.user)) continue; // already linked: nothing to do
      if (deadline <= this.#clock()) {
        late = true;
        continue;
      }
      // Punch at once (the newcomer punches now); dial TCP a little later, and only if the
      // newcomer's own dial has not reached us meanwhile.
      const tcpWhen = new Promise<boolean>((r) =>
        setTimeout(() => r(!this.deps.links.has(p.user)), this.settings.introDelayMs ?? INTRO_DIAL_DELAY_MS)
      );
      this.#track(this.#dial(p, via, deadline, false, { tcpWhen }));
    }
    // The newcomers stopped trying before we heard of them: ask again, so the host introduces us.
    // Not before our first request: a node reading old mail at start is about to ask anyway.
    if (
      late && this.#session !== undefined && this.#clock() - this.#lastReask > REASK_AFTER_LATE_INTRO_MS &&
      this.settings.vias.length > 0
    ) {
      this.#lastReask = this.#clock();
      const who = intro.peers.map((p) => p.user).join(", ");
      this.deps.events({ event: "info", message: `the introduction to ${who} came too late; asking again` });
      this.announce().catch((err) =>
        this.deps.events({
          event: "error",
          message: `Could not ask the host(s) again: ${(err as Error).message}`,
        })
      );
    }
    return "delete";
  }

  #track(p: Promise<void>): void {
    this.#dialing.add(p);
    void p.finally(() => this.#dialing.delete(p));
  }

  async #dialAll(peers: PeerEntry[], via: string): Promise<void> {
    // Relay-only members are reached when needed, not dialled up front.
    const ranked = rankCandidates(peers.filter((p) => p.role !== "relay"), {
      friends: this.settings.friends,
      blocked: this.settings.blocked,
    }).slice(0, this.settings.maxLinks);
    const deadline = this.#clock() + this.settings.dialWindowMs;
    const all = atMost(
      PARALLEL_DIALS,
      ranked,
      (e) => this.#dial(e, via, deadline, true),
      () => !this.#closed,
    );
    // Peers behind NATs may answer only later (their introduction is still in the mail), and a
    // peer that left answers never: say we are waiting once the quick paths had their chance.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const firstChance = new Promise<"later">((r) => timer = setTimeout(() => r("later"), FIRST_CHANCE_MS));
    const outcome = await Promise.race([all.then(() => "done" as const), firstChance]);
    clearTimeout(timer);
    if (this.deps.links.size === 0 && !this.#closed) {
      this.deps.events({
        event: "waiting",
        reason: ranked.length === 0
          ? "the host knows no other peer yet; waiting for one to dial us"
          : outcome === "later"
          ? `no peer answered yet; still trying for up to ${
            Math.round(this.settings.dialWindowMs / 1000)
          } s, and waiting for peers to dial us`
          : "no peer answered; waiting for one to dial us",
      });
    }
    await all;
  }

  /** Reaches one peer (joining a dial already under way); reports it to `via` if every path failed. */
  #dial(entry: PeerEntry, via: string, deadline: number, report: boolean, opts?: DialOptions): Promise<void> {
    const running = this.#inFlight.get(entry.user);
    if (running) return running;
    const task = (async () => {
      if (this.deps.links.has(entry.user)) return;
      const address = formatHostPort(entry.host, entry.port);
      this.deps.events({ event: "dial", peer: entry.user, address, candidates: entry.candidates.length });
      try {
        const link = await this.deps.dialer.dial(entry, deadline, { ...opts, signal: this.#stop.signal });
        this.deps.links.adopt(link);
      } catch (err) {
        if (this.#closed) return;
        // It may have reached us meanwhile (it dialled too): then nothing failed.
        if (this.deps.links.has(entry.user)) return;
        const reason = err instanceof Error ? err.message : String(err);
        this.deps.events({ event: "dial_failed", peer: entry.user, address, reason });
        if (report) await this.#reportFailure(entry, via);
      }
    })();
    this.#inFlight.set(entry.user, task);
    void task.finally(() => this.#inFlight.delete(entry.user));
    return task;
  }

  /** 【0034】【0035】: tell the host, naming the peer by user id, so it is flagged for others. */
  async #reportFailure(entry: PeerEntry, via: string): Promise<void> {
    const target = entry.user;
    const notice: Failure = {
      kind: "failure",
      user: this.settings.user,
      target,
      targetKey: entry.linkKey,
      time: this.#clock(),
      nonce: this.#random(NONCE_BYTES),
    };
    try {
      await this.deps.sender.send({
        from: this.settings.address,
        to: [via],
        subject: this.settings.marker,
        text: sealToText(this.deps.key, notice, this.#random),
      });
      this.deps.events({ event: "mail_sent", kind: "failure", recipients: 1 });
      this.deps.events({ event: "failure_sent", peer: target, via });
    } catch (err) {
      this.deps.events({
        event: "error",
        message: `Could not report ${target} to ${via}: ${(err as Error).message}`,
      });
    }
  }

  /**
   * Tells the hosts we go, so they forget us now rather than after --ttl (newcomers would dial us
   * in vain meanwhile, and report us). Best effort, and quick: a stopping node must not hang.
   */
  async leave(timeoutMs = 3000, unreachable: ReadonlySet<string> = new Set()): Promise<void> {
    // A host address that bounced would only bounce this too (and leave the bounce behind).
    const to = this.settings.vias.filter((v) => !unreachable.has(v.toLowerCase()));
    if (to.length === 0 || this.settings.probe || !this.#session) return;
    const leave: Leave = {
      kind: "leave",
      user: this.settings.user,
      linkKey: this.deps.dialer.publicKey,
      time: this.#clock(),
      nonce: this.#random(NONCE_BYTES),
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.deps.sender.send({
          from: this.settings.address,
          to,
          subject: this.settings.marker,
          text: sealToText(this.deps.key, leave, this.#random),
        }).then(() => this.deps.events({ event: "mail_sent", kind: "leave", recipients: to.length })),
        new Promise((r) => timer = setTimeout(r, timeoutMs)),
      ]);
    } catch {
      // the hosts forget us after --ttl anyway
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops dialing at once (links belong to the node and are closed there). */
  close(): Promise<void> {
    this.#closed = true;
    this.#stop.abort();
    return this.dialing;
  }
}
