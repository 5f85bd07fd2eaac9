// One Node process for `deno task bench meet`'s reference: a local HyperDHT testnet and one swarm
// already joined to a topic (server). Each line "run" on stdin makes a fresh client swarm and
// answers with the milliseconds from swarm.join(topic) to its `connection` event with that peer.
import Hyperswarm from "hyperswarm";
import createTestnet from "hyperdht/testnet.js";
import { createInterface } from "node:readline";

const testnet = await createTestnet(3, { host: "127.0.0.1" });
const topic = Buffer.alloc(32, 7);
const waiting = new Hyperswarm({ bootstrap: testnet.bootstrap });
waiting.on("connection", (c) => c.on("error", () => {}));
await waiting.join(topic, { server: true, client: false }).flushed();
console.log(JSON.stringify({ ready: true, bootstrap: testnet.bootstrap }));

async function once() {
  const fresh = new Hyperswarm({ bootstrap: testnet.bootstrap });
  const connected = new Promise((resolve) =>
    fresh.once("connection", (c) => {
      c.on("error", () => {});
      resolve();
    })
  );
  const t0 = performance.now();
  fresh.join(topic, { server: false, client: true });
  await connected;
  const ms = performance.now() - t0;
  await fresh.destroy();
  return ms;
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== "run") continue;
  console.log(JSON.stringify({ ms: await once() }));
}
await waiting.destroy();
await testnet.destroy();
