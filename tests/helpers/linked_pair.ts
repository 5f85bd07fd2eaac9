/** Two link registries (ours, "me", and a member's, "bob") linked over an in-memory pipe. */
import { generateKeyPair } from "../../src/protocol/noise.ts";
import { networkKeyFromSecret } from "../../src/protocol/keys.ts";
import { acceptLink, initiateLink } from "../../src/net/link.ts";
import { LinkRegistry } from "../../src/node/links.ts";
import { NetPeerLink } from "../../src/roles/net_linker.ts";
import { memoryPipe } from "./mem_stream.ts";

const NETWORK = networkKeyFromSecret(new Uint8Array(32).fill(3));

export async function linkedPair(a = "me", b = "bob") {
  const ours = new LinkRegistry({ user: a, events: () => {} });
  const theirs = new LinkRegistry({ user: b, events: () => {} });
  const [kA, kB] = [generateKeyPair(), generateKeyPair()];
  const [x, y] = memoryPipe();
  const [la, lb] = await Promise.all([
    initiateLink(x, {
      staticKey: kA,
      remoteStatic: kB.publicKey,
      networkKey: NETWORK.secret,
      localInfo: { user: a },
    }),
    acceptLink(y, { staticKey: kB, networkKey: NETWORK.secret, localInfo: { user: b } }),
  ]);
  const route = { path: "direct" as const, transport: "tcp" as const, kind: "lan" as const, rttMs: 1 };
  ours.adopt(new NetPeerLink(la, b, "mem", "out", route));
  theirs.adopt(new NetPeerLink(lb, a, "mem", "in", route));
  return {
    ours,
    theirs,
    async [Symbol.asyncDispose]() {
      await Promise.all([ours.close(), theirs.close()]);
    },
  };
}
