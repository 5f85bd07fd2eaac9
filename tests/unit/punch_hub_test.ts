import assert from "node:assert/strict";
import { PunchHub } from "../../src/net/punch_hub.ts";
import { networkKeyFromSecret } from "../../src/protocol/keys.ts";
import { generateKeyPair } from "../../src/protocol/noise.ts";

Deno.test("a second dial to a member already being punched is refused at once: one punched stream carries one handshake", async () => {
  const hub = await PunchHub.open({
    networkKey: networkKeyFromSecret(new Uint8Array(32).fill(4)),
    localKey: generateKeyPair().publicKey,
    stun: [],
    host: "127.0.0.1",
    interfaces: () => [],
  });
  try {
    const them = generateKeyPair().publicKey;
    // Nobody answers there: the first dial keeps punching until it is stopped.
    const reach = {
      candidates: [{ kind: "lan" as const, transport: "udp" as const, host: "127.0.0.1", port: 9 }],
      mapping: "unknown" as const,
    };
    const stop = new AbortController();
    const first = hub.connect(them, reach, Date.now() + 5_000, stop.signal);
    first.catch(() => {});
    await assert.rejects(hub.connect(them, reach, Date.now() + 5_000), /Already punching to this member/);
    stop.abort(new Error("the test is over"));
    await assert.rejects(first);
    // Once that session is over, a new dial punches again.
    const stop2 = new AbortController();
    const again = hub.connect(them, reach, Date.now() + 5_000, stop2.signal);
    again.catch(() => {});
    stop2.abort(new Error("the test is over"));
    await assert.rejects(again, /the test is over/);
  } finally {
    await hub.close();
  }
});
