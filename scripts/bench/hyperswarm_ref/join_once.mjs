// `deno task bench meet`'s like-for-like reference: one fresh Node process per meeting, as each
// mailmeet meeting is a fresh `join` process. Modules load first (mailmeet's start-up is not timed
// either); then the milliseconds from swarm.join(topic) to the `connection` event with the swarm
// that join_time.mjs keeps waiting on its testnet (bootstrap given as JSON in argv[2]).
import Hyperswarm from "hyperswarm";

const bootstrap = JSON.parse(process.argv[2]);
const topic = Buffer.alloc(32, 7);
const swarm = new Hyperswarm({ bootstrap });
const connected = new Promise((resolve) =>
  swarm.once("connection", (c) => {
    c.on("error", () => {});
    resolve();
  })
);
const t0 = performance.now();
swarm.join(topic, { server: false, client: true });
await connected;
console.log(JSON.stringify({ ms: performance.now() - t0 }));
await swarm.destroy();
