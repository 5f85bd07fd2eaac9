/**
 * IDLE that survives real networks (issue 15): a NAT gateway or a server that silently stops
 * carrying a quiet connection, without closing it. A TCP proxy in front of the real Dovecot plays
 * that network: on stall() it keeps every open connection but forwards nothing more either way.
 */
import assert from "node:assert/strict";
import { parseAccount } from "../../src/mail/account.ts";
import { openImapMailbox } from "../../src/mail/imap.ts";
import { mailStack } from "../helpers/mailstack.ts";
import { Waiters } from "../helpers/waiters.ts";

/** A TCP proxy to 127.0.0.1:`target` whose connections can be made to go silent. */
class StallingProxy implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #open = new Set<{ a: Deno.TcpConn; b: Deno.TcpConn; stalled: boolean }>();
  readonly #pumps: Promise<void>[] = [];
  #accepting: Promise<void>;
  connections = 0;

  constructor(readonly target: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  /** Every connection open now stops forwarding (data is read and dropped); new ones work. */
  stall(): void {
    for (const c of this.#open) c.stalled = true;
  }

  async #accept(): Promise<void> {
    try {
      for await (const a of this.#listener) {
        this.connections++;
        const b = await Deno.connect({ hostname: "127.0.0.1", port: this.target });
        const pair = { a, b, stalled: false };
        this.#open.add(pair);
        this.#pumps.push(this.#pump(pair, a, b), this.#pump(pair, b, a));
      }
    } catch {
      // closed
    }
  }

  async #pump(pair: { stalled: boolean }, from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
    const buf = new Uint8Array(16384);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        if (pair.stalled) continue; // a dead NAT mapping: nothing gets through, nobody is told
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch {
      // the other side went
    }
    await to.closeWrite().catch(() => {}); // already closed
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const { a, b } of this.#open) {
      for (const c of [a, b]) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
    }
    await Promise.allSettled(this.#pumps);
  }
}

function message(to: string, subject: string): string {
  return `From: tester@isp-a.test\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: ${
    new Date().toUTCString()
  }\r\n` +
    `Message-ID: <${crypto.randomUUID()}@isp-a.test>\r\n\r\nhello\r\n`;
}

const CASES = [
  {
    when: "in the middle of an IDLE",
    // Stalled once the server accepted the IDLE: then only the renewal's DONE can tell.
    settle: (idling: Promise<void>) => idling,
    found: "is found dead at the next IDLE renewal (DONE unanswered)",
  },
  {
    when: "between two commands",
    settle: (_idling: Promise<void>) => Promise.resolve(),
    found: "is found dead when IDLE is not accepted",
  },
];

for (const c of CASES) {
  Deno.test(`imap: a connection that silently stops forwarding ${c.when} ${c.found}, is replaced, and mail that came meanwhile is seen by UID`, async () => {
    await using stack = await mailStack();
    const me = stack.freshAddress("idle-stall");
    const direct = parseAccount(stack.url("imap", me));
    await using proxy = new StallingProxy(direct.port);
    const log: string[] = [];
    const idle = new Waiters();
    await using mb = await openImapMailbox({ ...direct, port: proxy.port }, {
      caCerts: [stack.caPem],
      log: (l) => log.push(l),
      onIdle: idle.fire,
      // Only the renewal can notice the silent connection: polling is off the table.
      pollIntervalMs: 600_000,
      idleRenewMs: 1_000,
      // A long margin: the IDLE's own inactivity timeout cannot be what finds the connection dead.
      tuning: { commandTimeoutMs: 2_000, idleMarginMs: 60_000, reconnectBaseDelayMs: 50 },
    });
    await stack.deliverRaw(me, message(me, "[mm-stall] before"));
    await stack.waitForMessages(me, 1);
    const before = await mb.list("[mm-stall]");
    assert.equal(before.length, 1);

    const ctl = new AbortController();
    const it = mb.watch(ctl.signal)[Symbol.asyncIterator]();
    try {
      assert.equal((await it.next()).done, false);
      const idling = idle.next(); // the watch enters IDLE only once asked for its next wake-up
      const next = it.next();
      await c.settle(idling);
      proxy.stall();
      // Its EXISTS goes into the silent connection and is lost: only a new connection can tell.
      await stack.deliverRaw(me, message(me, "[mm-stall] during"));
      const started = Date.now();
      const woke = await next;
      assert.equal(woke.done, false, "the watch goes on, on a new connection");
      assert.ok(Date.now() - started < 30_000, "well before the IDLE's own 61 s inactivity timeout");
      assert.ok(log.some((l) => /Lost the connection .* while watching .*IDLE/.test(l)), log.join("\n"));
      assert.ok(log.some((l) => /Reconnected/.test(l)), log.join("\n"));
      assert.equal(proxy.connections, 2, "one replacement, no reconnect storm");
      const after = await mb.list("[mm-stall]");
      assert.equal(after.length, 2);
      assert.equal(after[0].id, before[0].id, "ids (UIDVALIDITY:UID) survive the reconnect");
      assert.equal(after[1].subject, "[mm-stall] during");
    } finally {
      ctl.abort();
      await it.return?.();
    }
  });
}
