/**
 * A node that is a peer and, when a request reaches its own inbox, also a host (patent 【0064】,
 * the design card's auto-promotion). One inbox loop feeds both roles: replies go to the peer,
 * requests and failure notices to the host, created on the first request that arrives.
 */
import { ProtocolError } from "../protocol/errors.ts";
import type { EventSink } from "./events.ts";
import type { PeerEntry } from "../protocol/messages.ts";
import type { Host } from "./host.ts";
import type { Disposition, InboundMail } from "./inbox.ts";
import type { Peer } from "./peer.ts";

export interface AutoNodeOptions {
  peer: Peer;
  /** Creates the host role on first need; undefined means --no-host (requests are left alone). */
  promote?: () => Host;
  events: EventSink;
}

export class AutoNode {
  #host?: Host;
  /** What our own hosts told us, by host: a promoted node offers it too (【0065】 chaining). */
  #upstream = new Map<string, readonly PeerEntry[]>();

  constructor(readonly opts: AutoNodeOptions) {}

  /** Called with the peers of each reply our peer role receives. */
  heard = (peers: readonly PeerEntry[], via: string): void => {
    this.#upstream.set(via, peers);
    this.#host?.learnFrom(via, peers);
  };

  /** The host role, once promoted. */
  get host(): Host | undefined {
    return this.#host;
  }

  get hosting(): boolean {
    return this.#host !== undefined;
  }

  handle = async (m: InboundMail): Promise<Disposition> => {
    const { peer } = this.opts;
    if (m.message instanceof ProtocolError) {
      // Marker mail that does not open with our key: a host sets it aside (and logs it); a peer
      // that hosts nothing leaves it, since it may belong to another group sharing this inbox.
      if (this.#host) return await this.#host.handle(m);
      if (m.message.code !== "unsealed") return peer.handle(m); // broken: set aside
      this.opts.events({ event: "reply_ignored", reason: `${m.message.message} (left in the mailbox)` });
      return "keep";
    }
    if (peer.wants(m)) return peer.handle(m);
    if (!this.opts.promote) return "keep";
    if (!this.#host) {
      this.#host = this.opts.promote();
      for (const [via, peers] of this.#upstream) this.#host.learnFrom(via, peers);
      this.opts.events({ event: "promoted", reason: "a request reached our inbox" });
    }
    return await this.#host.handle(m);
  };
}
