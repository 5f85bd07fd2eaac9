import assert from "node:assert/strict";
import { Prompter, type PromptIo } from "../../src/cli/prompt.ts";

/** A scripted terminal: input arrives in the chunks given; everything written is kept. */
export function scriptedIo(chunks: string[]): PromptIo & { written: string; rawCalls: boolean[] } {
  const enc = new TextEncoder();
  const queue = chunks.map((c) => enc.encode(c));
  const io = {
    written: "",
    rawCalls: [] as boolean[],
    read(p: Uint8Array): Promise<number | null> {
      const next = queue.shift();
      if (!next) return Promise.resolve(null);
      const n = Math.min(p.length, next.length);
      p.set(next.subarray(0, n));
      if (n < next.length) queue.unshift(next.subarray(n));
      return Promise.resolve(n);
    },
    write(text: string) {
      io.written += text;
    },
    setRaw(raw: boolean) {
      io.rawCalls.push(raw);
    },
  };
  return io;
}

Deno.test("answers typed ahead in one chunk are taken one line at a time", async () => {
  const io = scriptedIo(["bob@x.test\r\n\nthird"]);
  const p = new Prompter(io);
  assert.equal(await p.ask("Address"), "bob@x.test");
  assert.equal(await p.ask("Server", "smtp://s.x.test"), "smtp://s.x.test");
  assert.equal(await p.ask("Third"), "third");
  assert.match(io.written, /Server \[smtp:\/\/s\.x\.test\]: /);
});

Deno.test("a secret is read in raw mode, never echoed, with backspace handled", async () => {
  const io = scriptedIo(["hunter", "x\x7f2\r"]);
  const p = new Prompter(io);
  assert.equal(await p.secret("Password"), "hunter2");
  assert.deepEqual(io.rawCalls, [true, false]);
  assert.ok(!io.written.includes("hunter"), io.written);
});

Deno.test("Ctrl-C during a secret cancels, and raw mode is switched off again", async () => {
  const io = scriptedIo(["abc\x03"]);
  await assert.rejects(() => new Prompter(io).secret("Password"), /Cancelled/);
  assert.deepEqual(io.rawCalls, [true, false]);
});

Deno.test("input that ends takes the default, or says the question was not answered", async () => {
  assert.equal(await new Prompter(scriptedIo([])).ask("Keep", "yes"), "yes");
  await assert.rejects(() => new Prompter(scriptedIo([])).ask("Address"), /input ended before "Address"/);
  assert.equal(await new Prompter(scriptedIo(["maybe\nY\n"])).confirm("Sure?", false), true);
});
