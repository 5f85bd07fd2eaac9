/**
 * `send` and `receive` over an in-memory link (tests/helpers/mem_pipe.ts): whole transfers, resume
 * from a kept partial file, and a hostile sender whose size or hash does not match what it offered.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { PART_SUFFIX } from "../../src/apps/file_paths.ts";
import {
  FILE_PROTOCOL,
  header,
  M_ANSWER,
  M_DATA,
  M_END,
  M_FILE,
  M_OFFER,
  M_RESULT,
  MessageReader,
  TransferError,
  writeJson,
} from "../../src/apps/file_proto.ts";
import { receiveFiles, type ReceiveOptions } from "../../src/apps/file_receive.ts";
import { collectEntries, sendFiles } from "../../src/apps/file_send.ts";
import type { AppEvent } from "../../src/apps/app_host.ts";
import { Mux, type MuxStream } from "../../src/net/mux.ts";
import { ends } from "../helpers/mem_pipe.ts";

/** Ann's mux (she sends) and bob's (he receives), over one in-memory link. */
function link() {
  const [x, y] = ends();
  const opened = Promise.withResolvers<MuxStream>();
  const ann = new Mux(x, { peer: "bob", keepaliveMs: 0 });
  const bob = new Mux(y, { peer: "ann", keepaliveMs: 0, onStream: (s) => opened.resolve(s) });
  return {
    ann,
    offered: opened.promise,
    async [Symbol.asyncDispose]() {
      await Promise.all([ann.close(), bob.close()]);
    },
  };
}

function receiving(root: string, events: AppEvent[] = []): ReceiveOptions {
  return {
    root,
    force: false,
    decide: () => Promise.resolve(true),
    emit: (e) => events.push(e),
    onProgress: () => {},
  };
}

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function tempDirs() {
  const from = await Deno.makeTempDir();
  const to = await Deno.makeTempDir();
  return {
    from,
    to,
    async [Symbol.asyncDispose]() {
      await Deno.remove(from, { recursive: true });
      await Deno.remove(to, { recursive: true });
    },
  };
}

Deno.test("a folder and its files arrive whole; no partial file is left behind", async () => {
  await using d = await tempDirs();
  await Deno.mkdir(join(d.from, "album", "inner"), { recursive: true });
  const big = bytes(3 * 1024 * 1024 + 17);
  await Deno.writeFile(join(d.from, "album", "big.bin"), big);
  await Deno.writeTextFile(join(d.from, "album", "inner", "note.txt"), "hello");
  await using l = link();
  const entries = await collectEntries([join(d.from, "album")], () => {});
  const [sent, got] = await Promise.all([
    sendFiles(l.ann, entries, () => {}, () => {}),
    l.offered.then((s) => receiveFiles(s, "ann", receiving(d.to))),
  ]);
  assert.deepEqual(sent, { files: 2, bytes: big.length + 5, resumed: 0 });
  assert.deepEqual(got, { files: 2, bytes: big.length + 5, resumed: 0 });
  assert.deepEqual(await Deno.readFile(join(d.to, "album", "big.bin")), big);
  assert.equal(await Deno.readTextFile(join(d.to, "album", "inner", "note.txt")), "hello");
  const names = [];
  for await (const e of Deno.readDir(join(d.to, "album"))) names.push(e.name);
  assert.deepEqual(names.sort(), ["big.bin", "inner"]);
});

Deno.test("a transfer resumes from the partial file the receiver kept: only the rest travels", async () => {
  await using d = await tempDirs();
  const data = bytes(2 * 1024 * 1024 + 5);
  const kept = 1024 * 1024 + 3;
  await Deno.writeFile(join(d.from, "big.bin"), data);
  await Deno.writeFile(join(d.to, `.big.bin${PART_SUFFIX}`), data.subarray(0, kept));
  await using l = link();
  const moved: number[] = [];
  const events: AppEvent[] = [];
  const [sent, got] = await Promise.all([
    sendFiles(
      l.ann,
      await collectEntries([join(d.from, "big.bin")], () => {}),
      () => {},
      (_s, _t, m) => moved.push(m),
    ),
    l.offered.then((s) => receiveFiles(s, "ann", receiving(d.to, events))),
  ]);
  assert.equal(sent.resumed, kept);
  assert.equal(got.resumed, kept);
  assert.equal(moved.at(-1), data.length - kept, "what travelled is the rest");
  assert.ok(events.some((e) => e.event === "resume" && e.offset === kept));
  assert.deepEqual(await Deno.readFile(join(d.to, "big.bin")), data);
  await assert.rejects(Deno.stat(join(d.to, `.big.bin${PART_SUFFIX}`)), Deno.errors.NotFound);
});

Deno.test("a partial file that is not the start of the sender's file is sent again from the beginning", async () => {
  await using d = await tempDirs();
  const data = bytes(4096);
  await Deno.writeFile(join(d.from, "f.bin"), data);
  await Deno.writeFile(join(d.to, `.f.bin${PART_SUFFIX}`), bytes(1000, 7));
  await using l = link();
  const events: AppEvent[] = [];
  const [sent] = await Promise.all([
    sendFiles(l.ann, await collectEntries([join(d.from, "f.bin")], () => {}), () => {}, () => {}),
    l.offered.then((s) => receiveFiles(s, "ann", receiving(d.to, events))),
  ]);
  assert.equal(sent.resumed, 0);
  assert.ok(events.some((e) => e.event === "restart"));
  assert.deepEqual(await Deno.readFile(join(d.to, "f.bin")), data);
});

Deno.test("an offer whose name leaves the target folder is refused before asking, and the sender hears why", async () => {
  await using d = await tempDirs();
  await Deno.writeTextFile(join(d.from, "x.txt"), "x");
  await using l = link();
  let asked = false;
  const [sending, receivingErr] = await Promise.all([
    sendFiles(l.ann, [{ path: "../x.txt", size: 1, source: join(d.from, "x.txt") }], () => {}, () => {})
      .then(() => null, (e: Error) => e),
    l.offered.then((s) =>
      receiveFiles(s, "ann", {
        ...receiving(d.to),
        decide: () => {
          asked = true;
          return Promise.resolve(true);
        },
      })
    ).then(() => null, (e: Error) => e),
  ]);
  assert.ok(sending instanceof TransferError);
  assert.match(sending.message, /bob declined: .*leave the target folder/);
  assert.match(receivingErr?.message ?? "", /Refused the offer from ann/);
  assert.equal(asked, false);
  await assert.rejects(Deno.stat(join(d.to, "..", "x.txt")), Deno.errors.NotFound);
});

/**
 * A hostile (or broken) sender: offers one file of `offered` bytes, sends `body`, and ends it with
 * `hash`. Returns what the sender heard back (a result, or the reason the receiver reset the stream
 * with) and the receiver's error.
 */
async function lyingSender(root: string, offered: number, body: Uint8Array, hash: string, offset = 0) {
  await using l = link();
  const s = l.ann.open(FILE_PROTOCOL);
  const receiver = l.offered.then((r) => receiveFiles(r, "mallory", receiving(root))).then(
    () => null,
    (e: Error) => e,
  );
  const reader = new MessageReader(s);
  await writeJson(s, M_OFFER, { entries: [{ path: "f.bin", size: offered }], total: offered });
  const answer = await reader.next();
  assert.equal(answer?.kind, M_ANSWER);
  assert.equal((await reader.json<{ accept: boolean }>(answer!.len)).accept, true);
  let heard = "";
  try {
    await writeJson(s, M_FILE, { i: 0, offset });
    await s.write(header(M_DATA, body.length));
    await s.write(body);
    await writeJson(s, M_END, { i: 0, sha256: hash });
    const r = await reader.next();
    if (r?.kind === M_RESULT) heard = (await reader.json<{ error?: string }>(r.len)).error ?? "ok";
  } catch (err) {
    heard = (err as Error).message; // the receiver reset the stream, saying why
  }
  s.reset("done");
  return { heard, error: await receiver };
}

Deno.test("a file whose SHA-256 does not match the sender's is refused, and its partial file removed", async () => {
  const root = await Deno.makeTempDir();
  try {
    const body = bytes(100);
    const { heard, error } = await lyingSender(root, 100, body, sha256(bytes(100, 9)));
    assert.match(heard, /f\.bin: the SHA-256 does not match the sender's, so the partial file was removed/);
    assert.match(error?.message ?? "", /SHA-256 does not match/);
    assert.deepEqual([...Deno.readDirSync(root)], [], "neither the file nor a partial one");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a file shorter than offered is refused; one longer than offered is cut off at the first extra byte", async () => {
  const root = await Deno.makeTempDir();
  try {
    const short = await lyingSender(root, 100, bytes(60), sha256(bytes(60)));
    assert.match(short.heard, /f\.bin: 60 B arrived, 100 B were offered/);
    assert.match(short.error?.message ?? "", /60 B arrived/);
    assert.deepEqual([...Deno.readDirSync(root)], []);
    const long = await lyingSender(root, 10, bytes(11), sha256(bytes(11)));
    assert.match(long.heard, /sent more than the size it offered/);
    assert.match(long.error?.message ?? "", /sent more than the size it offered/);
    await assert.rejects(Deno.stat(join(root, "f.bin")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a sender resuming at an offset the receiver did not offer is refused", async () => {
  const root = await Deno.makeTempDir();
  try {
    const { error } = await lyingSender(root, 100, bytes(50), sha256(bytes(100)), 50);
    assert.match(error?.message ?? "", /resumed at a wrong offset/);
    await assert.rejects(Deno.stat(join(root, "f.bin")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
