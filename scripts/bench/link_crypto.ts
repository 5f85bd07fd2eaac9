/**
 * Throughput of the encrypted link against a raw TCP copy, both over 127.0.0.1 in this process,
 * in the same run, printed as a ratio. Both ends share this process (and its main thread), so the
 * link figure pays for sealing and opening on one core.
 *
 *   deno run -A scripts/bench/link_crypto.ts [MiB]   (default 128)
 */
import { generateKeyPair } from "../../src/protocol/noise.ts";
import { dialLink, type Link, listenLinks } from "../../src/net/link.ts";
import { MAX_FRAME_PLAINTEXT } from "../../src/net/secure_channel.ts";
import {
  createFrameCipher,
  type FrameCipherKind,
  nativeFrameCipherAvailable,
} from "../../src/net/frame_cipher.ts";

const MIB = 1024 * 1024;
const total = Number(Deno.args[0] ?? 128) * MIB;
const piece = new Uint8Array(4 * MIB);
crypto.getRandomValues(piece.subarray(0, 65536));
for (let off = 65536; off < piece.length; off += 65536) piece.copyWithin(off, 0, 65536);

const mbps = (bytes: number, ms: number) => bytes / MIB / (ms / 1000);

async function rawTcp(): Promise<number> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  const t0 = performance.now();
  await Promise.all([
    (async () => {
      for (let sent = 0; sent < total; sent += piece.length) {
        const chunk = piece.subarray(0, Math.min(piece.length, total - sent));
        let off = 0;
        while (off < chunk.length) off += await client.write(chunk.subarray(off));
      }
    })(),
    (async () => {
      const buf = new Uint8Array(64 * 1024);
      let got = 0;
      while (got < total) {
        const n = await server.read(buf);
        if (n === null) throw new Error("raw stream ended early");
        got += n;
      }
    })(),
  ]);
  const ms = performance.now() - t0;
  client.close();
  server.close();
  return mbps(total, ms);
}

async function link(): Promise<number> {
  const networkKey = crypto.getRandomValues(new Uint8Array(32));
  const bob = generateKeyPair();
  let accept!: (l: Link) => void;
  const accepted = new Promise<Link>((r) => accept = r);
  await using listener = listenLinks({
    hostname: "127.0.0.1",
    port: 0,
    staticKey: bob,
    networkKey,
    onLink: accept,
  });
  await using a = await dialLink({
    hostname: "127.0.0.1",
    port: listener.addr.port,
    staticKey: generateKeyPair(),
    remoteStatic: bob.publicKey,
    networkKey,
  });
  await using b = await accepted;
  const t0 = performance.now();
  await Promise.all([
    (async () => {
      for (let sent = 0; sent < total; sent += piece.length) {
        await a.send(piece.subarray(0, Math.min(piece.length, total - sent)));
      }
    })(),
    (async () => {
      let got = 0;
      while (got < total) {
        const chunk = await b.receive();
        if (chunk === null) throw new Error("link ended early");
        got += chunk.length;
      }
    })(),
  ]);
  return mbps(total, performance.now() - t0);
}

/** Seal then open 1 MiB frames with no socket: the ceiling the crypto alone allows. */
async function sealOpen(kind: FrameCipherKind): Promise<number> {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const opts = { sendKey: key, receiveKey: key, headroom: 0, maxPlaintext: MAX_FRAME_PLAINTEXT };
  const tx = createFrameCipher(opts, kind);
  const rx = createFrameCipher(opts, kind);
  const frame = piece.subarray(0, MAX_FRAME_PLAINTEXT);
  const n = Math.max(8, total / MAX_FRAME_PLAINTEXT / 2);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const sealed = await tx.seal([frame]);
    await rx.open(sealed[sealed.length - 1]); // headroom 0: the last piece is the whole ciphertext
    tx.release(sealed);
  }
  return mbps(n * MAX_FRAME_PLAINTEXT, performance.now() - t0);
}

await rawTcp(); // warm up the loopback path and the JIT
const raw = await rawTcp();
const sealed = await link();
console.log(`raw TCP copy       ${raw.toFixed(0).padStart(6)} MiB/s`);
console.log(`encrypted link     ${sealed.toFixed(0).padStart(6)} MiB/s`);
for (const kind of nativeFrameCipherAvailable() ? ["native", "portable"] as const : ["portable"] as const) {
  const rate = await sealOpen(kind);
  console.log(
    `seal+open, no I/O  ${rate.toFixed(0).padStart(6)} MiB/s (1 MiB frames, one core, ${kind} cipher)`,
  );
}
console.log(`link / raw         ${(sealed / raw).toFixed(2)}`);
