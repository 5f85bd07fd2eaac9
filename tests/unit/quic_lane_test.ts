import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { generateKeyPair } from "../../src/protocol/noise.ts";
import { networkKeyFromSecret } from "../../src/protocol/keys.ts";
import { acceptLink, initiateLink } from "../../src/net/link.ts";
import { Mux, type MuxStream } from "../../src/net/mux.ts";
import { acceptQuic, connectQuic, quicAvailable } from "../../src/net/quic.ts";
import { quicIdentity } from "../../src/net/quic_identity.ts";

/** Two free UDP ports on loopback (bound and released). */
async function freeUdpPorts(n: number): Promise<number[]> {
  const sockets = await Promise.all(
    Array.from({ length: n }, () => {
      const s = createSocket("udp4");
      return new Promise<ReturnType<typeof createSocket>>((r) => s.bind(0, "127.0.0.1", () => r(s)));
    }),
  );
  const ports = sockets.map((s) => s.address().port);
  await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

Deno.test({
  name:
    "over QUIC, datagrams take QUIC's own datagram lane, beside the stream, and arrive with their channel",
  ignore: !quicAvailable(),
  async fn() {
    const network = networkKeyFromSecret(new Uint8Array(32).fill(9));
    const identity = quicIdentity(network.secret);
    const [pa, pb] = await freeUdpPorts(2);
    const [ka, kb] = [generateKeyPair(), generateKeyPair()];
    // A QUIC stream shows at the other side with its first bytes: the dialer's handshake.
    const [la, lb] = await Promise.all([
      connectQuic(pa, identity, { host: "127.0.0.1", port: pb }, 5_000).then((q) =>
        initiateLink(q, {
          staticKey: ka,
          remoteStatic: kb.publicKey,
          networkKey: network.secret,
          localInfo: {},
        })
      ),
      acceptQuic(pb, identity, { host: "127.0.0.1", port: pa }, 5_000).then((q) =>
        acceptLink(q, { staticKey: kb, networkKey: network.secret, localInfo: {} })
      ),
    ]);
    assert.ok((la.datagrams?.maxSize ?? 0) >= 1200, `QUIC takes datagrams (${la.datagrams?.maxSize})`);
    const got = Promise.withResolvers<[number, string]>();
    const streamed = Promise.withResolvers<string>();
    const b = new Mux(lb, {
      peer: "a",
      onDatagram: (ch, d) => got.resolve([ch, new TextDecoder().decode(d)]),
      onStream: (s: MuxStream) => void s.read().then((c) => streamed.resolve(new TextDecoder().decode(c!))),
    });
    const a = new Mux(la, { peer: "b" });
    assert.ok(a.sendDatagram(0x63dd8001, new TextEncoder().encode("game packet")));
    assert.equal(a.laneDatagrams, 1, "sent on the lane, not in a frame");
    assert.deepEqual(await got.promise, [0x63dd8001, "game packet"]);
    // The stream still works beside it.
    const s = a.open("note", {});
    await s.write(new TextEncoder().encode("hello"));
    assert.equal(await streamed.promise, "hello");
    // Too large for the lane: it goes in the frames, as on TCP.
    assert.ok(a.sendDatagram(7, new Uint8Array(la.datagrams!.maxSize + 100)));
    assert.equal(a.laneDatagrams, 1);
    await Promise.all([a.close(), b.close()]);
  },
});
