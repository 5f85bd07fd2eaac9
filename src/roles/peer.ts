/**
 * The peer (patent Fig. 2, 【0023】–【0038】): announce itself to its host(s) with a sealed request,
 * take the reply whose session id matches, dial the peers it lists in rank order, report the ones
 * that do not answer, and keep accepting dials from peers that come later.
 */
import type { Sender } from "../mail/smtp.ts";
import { sealToText } from "../protocol/envelope.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { NetworkKey } from "../protocol/keys.ts";
import {
  type Failure,
  NONCE_BYTES,
  type PeerEntry,
  type Request,
  SESSION_BYTES,
} from "../protocol/messages.ts";
import { equalBytes, type Random, systemRandom } from "../protocol/bytes.ts";
import { rankCandidates } from "../table/policy.ts";
import { type EventSink, shortHex } from "./events.ts";
import type { Disposition, InboundMail } from "./inbox.ts";

/** A direct link to another peer, as the roles see it (src/net provides the real one). */
export interface PeerLink {
  /** The other side's user id, learned inside the authenticated handshake. */
  readonly user: string;
  /** "ip:port" of the other side. */
  readonly address: string;
  readonly direction: "out" | "in";
  /** Resolves when the link has ended, with the reason if it failed. */
  readonly closed: Promise<string | undefined>;
  close(): Promise<void>;
}

/** How the peer reaches the network; tests pass a fake, the CLI passes src/net/. */
export interface Linker {
  /** Our link public key for this run, published through the host. */
  readonly publicKey: Uint8Array;
  /** Dials and authenticates; rejects with a one-sentence reason. */
  dial(entry: PeerEntry, timeoutMs: number): Promise<PeerLink>;
}

export interface PeerSettings {
  /** Our own e-mail address: the From of our mail, and where replies come. */
  address: string;
  user: string;
  /** Host mailbox address(es) to ask: one message goes to all of them. */
  vias: string[];
  marker: string;
  /** Host:port peers should dial to reach us. */
  advertise: { host: string; port: number };
  friends: ReadonlySet<string>;
  blocked: ReadonlySet<string>;
  dialTimeoutMs: number;
  /** At most this many links are opened by dialing (the rest of the room comes to us). */
  maxLinks: number;
}

export interface PeerDeps {
  key: NetworkKey;
  sender: Sender;
  linker: Linker;
  events: EventSink;
  /** Each link this peer opens or accepts. */
  onLink: (link: PeerLink) => void;
  /** The peers a host's reply listed, and which host said so (an auto-promoted host learns from it). */
  onPeers?: (peers: readonly PeerEntry[], via: string) => void;
  clock?: () => number;
  random?: Random;
}

export class Peer {
  #clock: () => number;
  #random: Random;
  #session?: Uint8Array;
  #answered = false;
  /** Users we hold a link to (one link per peer). */
  #links = new Map<string, PeerLink>();
  #firstLink = Promise.withResolvers<void>();
  #dialing?: Promise<void>;

  constructor(readonly settings: PeerSettings, readonly deps: PeerDeps) {
    this.#clock = deps.clock ?? Date.now;
    this.#random = deps.random ?? systemRandom;
  }

  /** Resolves when the first link (dialed or accepted) is up. */
  get firstLink(): Promise<void> {
    return this.#firstLink.promise;
  }

  get linkCount(): number {
    return this.#links.size;
  }

  /** Settles when the dials started by a reply have all been tried. */
  get dialing(): Promise<void> {
    return this.#dialing ?? Promise.resolve();
  }

  /** Sends one request to every --via host (one mail, several recipients: 【0058】). */
  async announce(): Promise<Request> {
    const s = this.settings;
    this.#session = this.#random(SESSION_BYTES);
    this.#answered = false;
    const req: Request = {
      kind: "request",
      user: s.user,
      host: s.advertise.host,
      port: s.advertise.port,
      session: this.#session,
      linkKey: this.deps.linker.publicKey,
      time: this.#clock(),
      nonce: this.#random(NONCE_BYTES),
      replyTo: s.address,
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

  wants(m: InboundMail): boolean {
    return !(m.message instanceof ProtocolError) && m.message.kind === "reply";
  }

  /** Takes a reply from the inbox. Replies are ours to delete once read, whatever they hold. */
  handle(m: InboundMail): Disposition {
    if (m.message instanceof ProtocolError) {
      this.deps.events({ event: "reply_ignored", reason: m.message.message });
      return "quarantine";
    }
    const reply = m.message;
    if (reply.kind !== "reply") return "keep";
    // 【0066】: a reply that does not echo our session id is not an answer to us.
    if (!this.#session || !equalBytes(reply.session, this.#session)) {
      this.deps.events({ event: "reply_ignored", reason: "its session id does not match our request" });
      return "delete";
    }
    if (this.#answered) {
      this.deps.events({
        event: "reply_ignored",
        reason: "an earlier reply to this request was already used",
      });
      return "delete";
    }
    this.#answered = true;
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
    this.#dialing = this.#dialAll(others, via);
    return "delete";
  }

  /** Registers a link accepted by our listener (【0029】【0036】: later peers dial us). */
  accepted(link: PeerLink): boolean {
    return this.#adopt(link);
  }

  async #dialAll(peers: PeerEntry[], via: string): Promise<void> {
    const ranked = rankCandidates(peers, { friends: this.settings.friends, blocked: this.settings.blocked });
    let opened = 0;
    for (const entry of ranked) {
      if (opened >= this.settings.maxLinks) break;
      if (this.#links.has(entry.user)) continue;
      const address = formatAddress(entry.host, entry.port);
      this.deps.events({ event: "dial", peer: entry.user, address });
      try {
        const link = await this.deps.linker.dial(entry, this.settings.dialTimeoutMs);
        if (this.#adopt(link)) opened++;
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        this.deps.events({ event: "dial_failed", peer: entry.user, address, reason });
        await this.#reportFailure(entry.user, via);
      }
    }
    if (this.#links.size === 0) {
      this.deps.events({
        event: "waiting",
        reason: ranked.length === 0
          ? "the host knows no other peer yet; waiting for one to dial us"
          : "no peer answered; waiting for one to dial us",
      });
    }
  }

  /** 【0034】【0035】: tell the host, naming the peer by user id, so it is flagged for others. */
  async #reportFailure(target: string, via: string): Promise<void> {
    const notice: Failure = {
      kind: "failure",
      user: this.settings.user,
      target,
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
   * One link per peer. When two peers dial each other at once, both keep the link dialed by the
   * smaller user id, so they agree on which one survives.
   */
  #adopt(link: PeerLink): boolean {
    const existing = this.#links.get(link.user);
    if (existing) {
      const keepNew = dialerOf(link, this.settings.user) < dialerOf(existing, this.settings.user);
      const loser = keepNew ? existing : link;
      if (!keepNew) {
        void loser.close();
        return false;
      }
      this.#links.delete(existing.user);
      void loser.close();
    }
    this.#links.set(link.user, link);
    this.deps.events({
      event: "connected",
      peer: link.user,
      address: link.address,
      direction: link.direction,
    });
    this.#firstLink.resolve();
    this.deps.onLink(link);
    void link.closed.then((reason) => {
      if (this.#links.get(link.user) !== link) return;
      this.#links.delete(link.user);
      this.deps.events({ event: "disconnected", peer: link.user, address: link.address, reason });
    });
    return true;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#links.values()].map((l) => l.close()));
    this.#links.clear();
  }
}

function dialerOf(link: PeerLink, me: string): string {
  return link.direction === "out" ? me : link.user;
}

export function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
