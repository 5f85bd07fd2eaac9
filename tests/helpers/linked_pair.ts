/** Links between link registries over in-memory pipes: one handshake, or a pair of registries ("me" and "bob") linked once. */
import { generateKeyPair, type KeyPair } from "../../src/protocol/noise.ts";
import { networkKeyFromSecret } from "../../src/protocol/keys.ts";
import { acceptLink, initiateLink, type Link } from "../../src/net/link.ts";
import { LinkRegistry } from "../../src/node/link_registry.ts";
import { NetLinkedPeer } from "../../src/roles/net_dialer.ts";
import type { LinkRoute } from "../../src/roles/peer.ts";
import { memoryPipe } from "./mem_pipe.ts";

const NETWORK = networkKeyFromSecret(new Uint8Array(32).fill(3));

export const DIRECT: LinkRoute = { path: "direct", transport: "tcp", kind: "lan", rttMs: 1 };

/** Who runs one end of a link: a user id and its static key. */
export interface Side {
  user: string;
  key: KeyPair;
}

export function side(user: string): Side {
  return { user, key: generateKeyPair() };
}

/** One authenticated link over a new in-memory pipe: [the dialer's end, the listener's end]. */
export async function handshake(
  dialer: Side,
  listener: Side,
  networkKey: Uint8Array = NETWORK.secret,
): Promise<[Link, Link]> {
  const [x, y] = memoryPipe();
  return await Promise.all([
    initiateLink(x, {
      staticKey: dialer.key,
      remoteStatic: listener.key.publicKey,
      networkKey,
      localInfo: { user: dialer.user },
    }),
    acceptLink(y, { staticKey: listener.key, networkKey, localInfo: { user: listener.user } }),
  ]);
}

/** Two registries, ours (`a`) and a member's (`b`), linked once (`a` dialled). */
export async function linkedPair(a = "me", b = "bob") {
  const ours = new LinkRegistry({ user: a, events: () => {} });
  const theirs = new LinkRegistry({ user: b, events: () => {} });
  const [la, lb] = await handshake(side(a), side(b));
  ours.adopt(new NetLinkedPeer(la, b, "mem", "out", DIRECT));
  theirs.adopt(new NetLinkedPeer(lb, a, "mem", "in", DIRECT));
  return {
    ours,
    theirs,
    async [Symbol.asyncDispose]() {
      await Promise.all([ours.close(), theirs.close()]);
    },
  };
}
