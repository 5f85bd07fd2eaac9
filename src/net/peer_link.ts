/**
 * The roles' view of a direct link (PeerLink, Linker in src/roles/peer.ts) on top of the Noise link
 * of link.ts: who is on the other side (the user id from inside the handshake) and when it ends.
 */
import { isValidUserId, type PeerEntry } from "../protocol/messages.ts";
import { generateKeyPair, type KeyPair, LinkError } from "../protocol/noise.ts";
import type { Linker, PeerLink } from "../roles/peer.ts";
import { dialLink, type Link, type LinkListener, listenLinks } from "./link.ts";

export const LINK_INFO_VERSION = 1;

export class NetPeerLink implements PeerLink {
  readonly closed: Promise<string | undefined>;
  #done = Promise.withResolvers<string | undefined>();
  #ended = false;

  constructor(
    readonly link: Link,
    readonly user: string,
    readonly address: string,
    readonly direction: "out" | "in",
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

function userOf(link: Link, address: string): string {
  const user = link.remotePayload.user;
  if (!isValidUserId(user)) {
    link.abort();
    throw new LinkError(`Dropped the link with ${address}: it sent no valid user id.`, "protocol");
  }
  return user;
}

export class NetLinker implements Linker {
  readonly staticKey: KeyPair;

  constructor(
    readonly networkKey: Uint8Array,
    readonly user: string,
    staticKey: KeyPair = generateKeyPair(),
  ) {
    this.staticKey = staticKey;
  }

  get publicKey(): Uint8Array {
    return this.staticKey.publicKey;
  }

  async dial(entry: PeerEntry, timeoutMs: number): Promise<NetPeerLink> {
    const link = await dialLink({
      hostname: entry.host,
      port: entry.port,
      staticKey: this.staticKey,
      remoteStatic: entry.linkKey,
      networkKey: this.networkKey,
      localInfo: { user: this.user, v: LINK_INFO_VERSION },
      timeoutMs,
    });
    const user = userOf(link, link.remoteAddr);
    if (user !== entry.user) {
      // The key matched what the host published, so this is that peer; a different id means a bug or a lie.
      link.abort();
      throw new LinkError(`${link.remoteAddr} answered as "${user}", not "${entry.user}".`, "protocol");
    }
    return new NetPeerLink(link, user, link.remoteAddr, "out");
  }

  listen(opts: {
    hostname: string;
    port: number;
    onLink: (link: NetPeerLink) => void;
    onError: (err: LinkError) => void;
    signal?: AbortSignal;
  }): LinkListener {
    return listenLinks({
      hostname: opts.hostname,
      port: opts.port,
      staticKey: this.staticKey,
      networkKey: this.networkKey,
      localInfo: { user: this.user, v: LINK_INFO_VERSION },
      signal: opts.signal,
      onError: opts.onError,
      onLink: (link) => {
        try {
          opts.onLink(new NetPeerLink(link, userOf(link, link.remoteAddr), link.remoteAddr, "in"));
        } catch (err) {
          if (err instanceof LinkError) opts.onError(err);
          else throw err;
        }
      },
    });
  }
}
