/**
 * The apps end to end: chat, send/receive and tunnel as separate CLI processes (the bundle) that
 * meet through a host on the maildir spool, and once over the real Postfix + Dovecot (IMAP).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createSocket } from "node:dgram";
import { Buffer } from "node:buffer";
import { BUNDLE, type CliEvent } from "../../scripts/lib/cli_process.ts";
import { type Account, memberApp as app, type Transport, type World, world } from "../helpers/world.ts";

const is = (event: string, extra: Record<string, unknown> = {}) => (e: CliEvent) =>
  e.event === event && Object.entries(extra).every(([k, v]) => e[k] === v);

/** A CLI process with stdin as a pipe (chat): lines in, JSON events out. */
function chatProcess(w: World, name: string, host: Account) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      BUNDLE,
      "chat",
      ...w.common(w.account(name)),
      "--user",
      name,
      "--via",
      host.address,
      "--listen",
      "127.0.0.1:0",
      "--timeout",
      "60",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...w.env },
  }).spawn();
  const events: CliEvent[] = [];
  const waiters = new Set<() => void>();
  const stderr: string[] = [];
  const pump = async (s: ReadableStream<Uint8Array>, onLine: (l: string) => void) => {
    let rest = "";
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let i;
      while ((i = rest.indexOf("\n")) >= 0) {
        onLine(rest.slice(0, i));
        rest = rest.slice(i + 1);
      }
    }
  };
  const out = pump(child.stdout, (l) => {
    try {
      events.push(JSON.parse(l));
    } catch { /* not an event */ }
    for (const f of [...waiters]) f();
  });
  const err = pump(child.stderr, (l) => stderr.push(l));
  const writer = child.stdin.getWriter();
  let stdinOpen = true;
  return {
    name,
    events,
    say: (line: string) => writer.write(new TextEncoder().encode(`${line}\n`)),
    endInput: async () => {
      if (stdinOpen) {
        stdinOpen = false;
        await writer.close();
      }
    },
    waitCount(pred: (e: CliEvent) => boolean, n: number, what: string, ms = 30_000): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (events.filter(pred).length >= n) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `${name}: no ${what}.\nevents: ${JSON.stringify(events)}\nstderr: ${stderr.join("\n")}`,
            ),
          );
        }, ms);
        waiters.add(check);
        check();
      });
    },
    status: child.status,
    async [Symbol.asyncDispose]() {
      await this.endInput().catch(() => {});
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await child.status;
      clearTimeout(t);
      await Promise.all([out, err]);
    },
  };
}

function sha256(path: string): Promise<string> {
  return (async () => {
    const h = createHash("sha256");
    using f = await Deno.open(path);
    const buf = new Uint8Array(1 << 20);
    for (let n = await f.read(buf); n !== null; n = await f.read(buf)) h.update(buf.subarray(0, n));
    return h.digest("hex");
  })();
}

/** A file of pseudo-random bytes (no two MiB alike), written in 1 MiB pieces. */
async function makeFile(path: string, mib: number): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(1 << 20);
  for (let i = 0; i < block.length; i += 65536) crypto.getRandomValues(block.subarray(i, i + 65536));
  for (let m = 0; m < mib; m++) {
    new DataView(block.buffer).setUint32(0, m); // each MiB differs
    let off = 0;
    while (off < block.length) off += await f.write(block.subarray(off));
  }
}

async function size(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

Deno.test("[maildir] chat among three piped peers: everyone hears everyone, with sender id; joins and leaves are announced", async () => {
  await using w = await world("maildir");
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  await using ann = chatProcess(w, "ann", hostAcct);
  await ann.waitCount(is("waiting"), 1, "ann waiting");
  await using bob = chatProcess(w, "bob", hostAcct);
  await bob.waitCount(is("joined", { peer: "ann" }), 1, "bob joined by ann");
  await using cid = chatProcess(w, "cid", hostAcct);
  for (const p of [ann, bob, cid]) await p.waitCount(is("joined"), 2, `${p.name} sees two others`);

  await ann.say("hello from ann");
  await bob.say("bob here");
  await cid.say("and cid");
  for (const p of [ann, bob, cid]) await p.waitCount(is("chat"), 2, `${p.name} hears two lines`);
  const heard = (p: typeof ann) => p.events.filter(is("chat")).map((e) => `${e.peer}: ${e.text}`).sort();
  assert.deepEqual(heard(ann), ["bob: bob here", "cid: and cid"]);
  assert.deepEqual(heard(bob), ["ann: hello from ann", "cid: and cid"]);
  assert.deepEqual(heard(cid), ["ann: hello from ann", "bob: bob here"]);
  assert.ok(
    ann.events.filter(is("chat")).every((e) =>
      typeof e.sent === "string" && !isNaN(Date.parse(e.sent as string))
    ),
  );

  // End of input leaves the room; the others are told.
  await cid.endInput();
  assert.equal((await cid.status).code, 0);
  await ann.waitCount(is("left", { peer: "cid" }), 1, "ann told cid left");
  await bob.waitCount(is("left", { peer: "cid" }), 1, "bob told cid left");
  await ann.say("still here?");
  await bob.waitCount(is("chat", { text: "still here?" }), 1, "bob hears ann after cid left");
});

async function transferWorld(transport: Transport) {
  const w = await world(transport);
  const hostAcct = w.account("host", "game.test");
  w.host("host", hostAcct);
  return { w, hostAcct };
}

Deno.test("[maildir] a 200 MiB file: the sender vanishes mid-transfer, the partial file is kept, a retry resumes and the hash matches", async () => {
  const { w, hostAcct } = await transferWorld("maildir");
  await using _w = w;
  const src = `${w.dir}/big.bin`;
  await makeFile(src, 200);
  const out = `${w.dir}/in`;
  const part = `${out}/.big.bin.mailmeet-part`;

  {
    await using bob = app(w, "bob", hostAcct, ["receive", "--out", out, "--yes"]);
    await bob.waitFor(is("waiting"), 30_000, "bob waiting");
    await using ann = app(w, "ann", hostAcct, ["send", src, "--to", "bob"]);
    await bob.waitFor(is("accepted"), 30_000, "bob accepting");
    // Cut the sender once a good part arrived (polling the partial file, no clock involved).
    for (let i = 0; i < 20_000 && (await size(part)) < 20 * 1024 * 1024; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    ann.kill("SIGKILL");
    await ann.status;
    const st = await bob.status;
    assert.equal(st.code, 4, bob.stderr.join("\n"));
    const said = bob.stderr.join("\n");
    assert.match(said, /ann|broke off|stopped/);
    assert.match(said, /kept in .*\.big\.bin\.mailmeet-part/);
    assert.ok(!said.includes("    at "), "no stack trace");
  }
  const kept = await size(part);
  assert.ok(kept >= 20 * 1024 * 1024 && kept < 200 * 1024 * 1024, `partial holds ${kept} bytes`);
  await assert.rejects(Deno.stat(`${out}/big.bin`), "nothing passed off as complete");
  // Nothing corrupted: what was kept is exactly the start of the file.
  {
    using a = await Deno.open(src);
    using b = await Deno.open(part);
    const x = new Uint8Array(kept);
    const y = new Uint8Array(kept);
    for (let o = 0; o < kept;) o += (await a.read(x.subarray(o)))!;
    for (let o = 0; o < kept;) o += (await b.read(y.subarray(o)))!;
    assert.ok(x.every((v, i) => v === y[i]), "the partial file is a prefix of the source");
  }

  // The retry resumes from the partial file.
  await using bob2 = app(w, "bob2", hostAcct, ["receive", "--out", out, "--yes"]);
  await bob2.waitFor(is("waiting"), 30_000, "bob2 waiting");
  await using ann2 = app(w, "ann2", hostAcct, ["send", src, "--to", "bob2"]);
  const resume = await bob2.waitFor(is("resume"), 30_000, "resume");
  assert.equal(resume.offset, kept);
  assert.equal((await ann2.status).code, 0, ann2.stderr.join("\n"));
  assert.equal((await bob2.status).code, 0, bob2.stderr.join("\n"));
  assert.ok(ann2.events.some(is("resume", { offset: kept })));
  const done = bob2.events.find(is("file_done", { path: "big.bin" }))!;
  assert.equal(done.sha256, await sha256(src));
  assert.equal(await sha256(`${out}/big.bin`), await sha256(src));
  await assert.rejects(Deno.stat(part), "the partial file took its final name");
});

Deno.test("[maildir] a folder arrives whole (nested, empty folder), links are skipped; an existing file is refused without --force", async () => {
  const { w, hostAcct } = await transferWorld("maildir");
  await using _w = w;
  const src = `${w.dir}/album`;
  await Deno.mkdir(`${src}/2024/summer`, { recursive: true });
  await Deno.mkdir(`${src}/empty`);
  await Deno.writeTextFile(`${src}/readme.txt`, "hello\n");
  await Deno.writeTextFile(`${src}/2024/summer/a.txt`, "a".repeat(100_000));
  await makeFile(`${src}/2024/b.bin`, 3);
  await Deno.symlink("/etc/passwd", `${src}/2024/passwd-link`);
  const out = `${w.dir}/in`;

  {
    await using bob = app(w, "bob", hostAcct, ["receive", "--out", out, "--yes"]);
    await bob.waitFor(is("waiting"), 30_000, "bob waiting");
    await using ann = app(w, "ann", hostAcct, ["send", src, "--to", "bob"]);
    assert.equal((await ann.status).code, 0, ann.stderr.join("\n"));
    assert.equal((await bob.status).code, 0, bob.stderr.join("\n"));
    assert.ok(ann.events.some(is("skipped", { path: "album/2024/passwd-link" })));
    const offer = bob.events.find(is("offer"))!;
    assert.deepEqual(
      (offer.entries as { path: string }[]).map((e) => e.path),
      [
        "album",
        "album/2024",
        "album/2024/b.bin",
        "album/2024/summer",
        "album/2024/summer/a.txt",
        "album/empty",
        "album/readme.txt",
      ],
    );
  }
  for (const f of ["readme.txt", "2024/summer/a.txt", "2024/b.bin"]) {
    assert.equal(await sha256(`${out}/album/${f}`), await sha256(`${src}/${f}`), f);
  }
  assert.ok((await Deno.stat(`${out}/album/empty`)).isDirectory);
  await assert.rejects(Deno.lstat(`${out}/album/2024/passwd-link`));

  // Again: every file exists now, so without --force the offer is refused and nothing changes.
  await Deno.writeTextFile(`${out}/album/readme.txt`, "mine\n");
  {
    await using bob = app(w, "bob3", hostAcct, ["receive", "--out", out, "--yes"]);
    await bob.waitFor(is("waiting"), 30_000, "bob3 waiting");
    await using ann = app(w, "ann3", hostAcct, ["send", src, "--to", "bob3"]);
    assert.equal((await ann.status).code, 4);
    assert.match(ann.stderr.join("\n"), /declined: .*already exists \(--force overwrites it\)/);
    assert.equal((await bob.status).code, 4);
    assert.equal(await Deno.readTextFile(`${out}/album/readme.txt`), "mine\n");
  }
  // With --force it is overwritten.
  {
    await using bob = app(
      w,
      "bob4",
      hostAcct,
      ["receive", "--out", out, "--yes", "--force"],
    );
    await bob.waitFor(is("waiting"), 30_000, "bob4 waiting");
    await using ann = app(w, "ann4", hostAcct, ["send", src, "--to", "bob4"]);
    assert.equal((await ann.status).code, 0, ann.stderr.join("\n"));
    assert.equal((await bob.status).code, 0);
    assert.equal(await Deno.readTextFile(`${out}/album/readme.txt`), "hello\n");
  }
});

Deno.test("[maildir] the receiver vanishing mid-transfer gives the sender one clear sentence and exit 4", async () => {
  const { w, hostAcct } = await transferWorld("maildir");
  await using _w = w;
  const src = `${w.dir}/big.bin`;
  await makeFile(src, 200);
  const out = `${w.dir}/in`;
  await using bob = app(w, "bob", hostAcct, ["receive", "--out", out, "--yes"]);
  await bob.waitFor(is("waiting"), 30_000, "bob waiting");
  await using ann = app(w, "ann", hostAcct, ["send", src, "--to", "bob"]);
  await ann.waitFor(is("accepted"), 30_000, "ann accepted");
  for (let i = 0; i < 20_000 && (await size(`${out}/.big.bin.mailmeet-part`)) < 10 * 1024 * 1024; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  bob.kill("SIGKILL");
  const st = await ann.status;
  assert.equal(st.code, 4);
  const said = ann.stderr.filter((l) => l.startsWith("mailmeet:"));
  assert.equal(said.length, 1, ann.stderr.join("\n"));
  assert.match(said[0], /The transfer to bob broke off/);
  await assert.rejects(Deno.stat(`${out}/big.bin`));
});

/** A TCP echo server on 127.0.0.1 (a free port), closed on dispose. */
function echoServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Promise<void>>();
  const accepting = (async () => {
    for await (const conn of listener) {
      const c = (async () => {
        const buf = new Uint8Array(65536);
        try {
          for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
            let o = 0;
            while (o < n) o += await conn.write(buf.subarray(o, n));
          }
          await conn.closeWrite();
        } catch { /* the client went away */ }
        conn.close();
      })();
      conns.add(c);
      void c.finally(() => conns.delete(c));
    }
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting.catch(() => {});
      await Promise.allSettled([...conns]);
    },
  };
}

async function tunnelPair(w: World, hostAcct: Account, exposePort: number, udp: boolean) {
  const flag = udp ? ["--udp"] : [];
  const ann = app(w, "ann", hostAcct, ["tunnel", "--expose", String(exposePort), ...flag]);
  await ann.waitFor(is("waiting"), 30_000, "ann waiting");
  const bob = app(w, "bob", hostAcct, ["tunnel", "--local", "0", ...flag]);
  const listening = await bob.waitFor(is("tunnel_listening"), 30_000, "bob listening");
  await bob.waitFor(is("connected", { peer: "ann" }), 30_000, "bob linked to ann");
  return { ann, bob, port: listening.port as number };
}

async function tunnelTcp(transport: Transport, connections: number, bytesEach: number) {
  const { w, hostAcct } = await transferWorld(transport);
  await using _w = w;
  await using echo = echoServer();
  const { ann, bob, port } = await tunnelPair(w, hostAcct, echo.port, false);
  await using _a = ann;
  await using _b = bob;
  await Promise.all(Array.from({ length: connections }, async (_, i) => {
    const data = new Uint8Array(bytesEach);
    for (let o = 0; o < data.length; o += 65536) crypto.getRandomValues(data.subarray(o, o + 65536));
    data[0] = i;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const got = new Uint8Array(bytesEach);
    const reading = (async () => {
      let o = 0;
      while (o < got.length) {
        const n = await conn.read(got.subarray(o));
        if (n === null) break;
        o += n;
      }
      return o;
    })();
    let o = 0;
    while (o < data.length) o += await conn.write(data.subarray(o, Math.min(data.length, o + 100_000)));
    await conn.closeWrite();
    assert.equal(await reading, bytesEach, `connection ${i} got all bytes back`);
    assert.equal(await conn.read(new Uint8Array(1)), null, `connection ${i} ends after the echo`);
    conn.close();
    assert.ok(got.every((v, j) => v === data[j]), `connection ${i} byte for byte`);
  }));
  // Only the exposed port is reachable: the local side names no address, and the streams carried nothing else.
  assert.equal(ann.events.filter(is("tunnel_open", { port: echo.port })).length, connections);
}

Deno.test("[maildir] a tunnel carries 50 concurrent TCP connections, each byte for byte", async () => {
  await tunnelTcp("maildir", 50, 1024 * 1024);
});

Deno.test("[imap] over the real mail stack: a tunnel carries 5 TCP connections byte for byte", async () => {
  await tunnelTcp("imap", 5, 256 * 1024);
});

Deno.test("[maildir] a UDP tunnel: datagrams from two sources each come back to their own source", async () => {
  const { w, hostAcct } = await transferWorld("maildir");
  await using _w = w;
  const server = createSocket("udp4");
  server.on(
    "message",
    (msg, from) => server.send(Buffer.concat([Buffer.from("echo:"), msg]), from.port, from.address),
  );
  await new Promise<void>((r) => server.bind(0, "127.0.0.1", () => r()));
  try {
    const { ann, bob, port } = await tunnelPair(w, hostAcct, server.address().port, true);
    await using _a = ann;
    await using _b = bob;
    const client = async (name: string) => {
      const sock = createSocket("udp4");
      await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
      const got: string[] = [];
      sock.on("message", (m) => got.push(m.toString()));
      try {
        // UDP may drop: send each datagram until its echo is back (bounded).
        for (let i = 0; i < 5; i++) {
          const text = `${name}-${i}`;
          for (let tries = 0; tries < 50 && !got.includes(`echo:${text}`); tries++) {
            sock.send(text, port, "127.0.0.1");
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      } finally {
        await new Promise<void>((r) => sock.close(() => r()));
      }
      return got;
    };
    const [x, y] = await Promise.all([client("x"), client("y")]);
    for (let i = 0; i < 5; i++) {
      assert.ok(x.includes(`echo:x-${i}`), `x got echo ${i}: ${x}`);
      assert.ok(y.includes(`echo:y-${i}`), `y got echo ${i}: ${y}`);
    }
    assert.ok(x.every((m) => m.startsWith("echo:x-")), "x never got y's datagrams");
    assert.ok(y.every((m) => m.startsWith("echo:y-")), "y never got x's datagrams");
    assert.equal(bob.events.filter(is("udp_session")).length, 2);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});
