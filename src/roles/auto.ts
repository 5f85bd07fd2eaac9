/**
 * A node that is a peer and, when a request reaches its own inbox, also a host (patent 【0064】,
 * the design card's auto-promotion). One inbox loop feeds both roles: replies go to the peer,
 * requests and failure notices to the host, created on the first request that arrives.
 */
import { ProtocolError } from "../protocol/errors.ts";
import type { EventSink } from "./events.ts";
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

  constructor(readonly opts: AutoNodeOptions) {}

  get hosting(): boolean {
    return this.#host !== undefined;
  }

  handle = async (m: InboundMail): Promise<Disposition> => {
    const { peer } = this.opts;
    if (m.message instanceof ProtocolError) {
      // Undecryptable marker mail: whoever we are, it is not readable by us; the host logs it.
      return this.#host ? await this.#host.handle(m) : peer.handle(m);
    }
    if (peer.wants(m)) return peer.handle(m);
    if (!this.opts.promote) return "keep";
    if (!this.#host) {
      this.#host = this.opts.promote();
      this.opts.events({ event: "promoted", reason: "a request reached our inbox" });
    }
    return await this.#host.handle(m);
  };
}
