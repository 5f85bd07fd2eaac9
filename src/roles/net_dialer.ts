/**
 * The roles' ports (LinkedPeer, PeerDialer in peer.ts) over the real network of src/net: dialing a
 * peer, and who is on the other side of a Link (the user id from inside the authenticated
 * handshake), how it was reached, and when the link ends. Roles may use net; net knows nothing of
 * roles.
 */
import { isPathKind } from "../protocol/candidate.ts";
import { isValidUserId, type PeerEntry } from "../protocol/messages.ts";
import { LinkError } from "../protocol/noise.ts";
import type { Connector, Route } from "../net/connector.ts";
import type { Link } from "../net/link.ts";
import type { DialOptions, LinkedPeer, LinkRoute, PeerDialer, Reach } from "./peer.ts";

export const HANDSHAKE_PAYLOAD_VERSION = 1;

export class NetLinkedPeer implements LinkedPeer {
  readonly closed: Promise<string | undefined>;
  #done = Promise.withResolvers<string | undefined>();
  #ended = false;

  constructor(
    readonly link: Link,
    readonly user: string,
    readonly address: string,
    readonly direction: "out" | "in",
    readonly route: LinkRoute,
  ) {
    this.closed = this.#done.promise;
  }

  /** Called by whoever reads the link when it sees the end (null) or an error. */
  ended(reason?: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#done.resolve(reason);
  }

  async close(): Promise<void> {
    try {
      await this.link.close();
    } finally {
      this.ended();
    }
  }
}

/** The user id the other side proved in the handshake; aborts the link when there is none. */
export function userOf(link: Link, address: string): string {
  const user = link.remotePayload.user;
  if (!isValidUserId(user)) {
    link.abort();
    throw new LinkError(`Dropped the link with ${address}: it sent no valid user id.`, "protocol");
  }
  return user;
}

function linkRoute(r: Route): LinkRoute {
  return { path: r.path, transport: r.transport, kind: r.kind, rttMs: r.rttMs };
}

export class NetPeerDialer implements PeerDialer {
  constructor(
    readonly connector: Connector,
    readonly reach: () => Reach,
  ) {}

  get publicKey(): Uint8Array {
    return this.connector.opts.staticKey.publicKey;
  }

  /** Dials in flight, by user id: a member is dialled once at a time (see dial()). */
  readonly #dialing = new Map<string, Promise<NetLinkedPeer>>();

  /**
   * A link to `entry`. One dial per member at a time: a second one (the host's introduction and
   * a member's word over a link often come together) waits for the first and gets its link, or
   * dials itself once that one failed. Two at once would race each other for the same punched
   * path, whose one stream cannot carry two handshakes.
   */
  async dial(entry: PeerEntry, deadline: number, opts: DialOptions = {}): Promise<NetLinkedPeer> {
    for (let running = this.#dialing.get(entry.user); running; running = this.#dialing.get(entry.user)) {
      try {
        return await running;
      } catch {
        // that dial failed: ours may still get through (its own deadline, its own options)
      }
      opts.signal?.throwIfAborted();
      if (Date.now() >= deadline) {
        throw new LinkError(`No path to ${entry.user} authenticated in time.`, "timeout");
      }
    }
    const dialing = this.#dialOnce(entry, deadline, opts);
    this.#dialing.set(entry.user, dialing);
    try {
      return await dialing;
    } finally {
      if (this.#dialing.get(entry.user) === dialing) this.#dialing.delete(entry.user);
    }
  }

  async #dialOnce(entry: PeerEntry, deadline: number, opts: DialOptions): Promise<NetLinkedPeer> {
    const { link, route } = await this.connector.connect(
      { user: entry.user, linkKey: entry.linkKey, candidates: entry.candidates, mapping: entry.mapping },
      deadline,
      opts.signal,
      opts.tcpWhen,
    );
    const user = userOf(link, route.address);
    if (user !== entry.user) {
      // The key matched what the host published, so this is that peer; a different id means a bug or a lie.
      link.abort();
      throw new LinkError(`${route.address} answered as "${user}", not "${entry.user}".`, "protocol");
    }
    // A punched path's QUIC server ran the Noise responder: it did not dial, whoever started.
    return new NetLinkedPeer(
      link,
      user,
      route.address,
      link.role === "dialer" ? "out" : "in",
      linkRoute(route),
    );
  }

  /**
   * A link made outside dial() (the TCP listener, a punch the other side started, a relay, a
   * relay's own link): who dialled is who ran the handshake's initiator. A TCP listener learns
   * the path kind from the dialer's handshake payload.
   */
  wrap(link: Link, route: Route): NetLinkedPeer {
    const user = userOf(link, route.address);
    const said = link.remotePayload.path;
    const accepted = link.role === "listener";
    const kind = accepted && route.transport === "tcp" && route.path === "direct" && isPathKind(said)
      ? said
      : route.kind;
    return new NetLinkedPeer(link, user, route.address, accepted ? "in" : "out", {
      ...linkRoute(route),
      kind,
    });
  }
}
