import assert from "node:assert/strict";
import { LiveLine } from "../../src/cli/live_line.ts";

/** What a terminal would show for the bytes written: "\r" returns, "\x1b[K" clears to the end. */
function render(out: string): string[] {
  const lines: string[] = [""];
  let col = 0;
  for (let i = 0; i < out.length; i++) {
    const ch = out[i];
    if (out.startsWith("\x1b[K", i)) {
      lines[lines.length - 1] = lines[lines.length - 1].slice(0, col);
      i += 2;
    } else if (ch === "\r") col = 0;
    else if (ch === "\n") {
      lines.push("");
      col = 0;
    } else {
      const l = lines[lines.length - 1];
      lines[lines.length - 1] = l.slice(0, col) + ch + l.slice(col + 1);
      col++;
    }
  }
  return lines;
}

function capture() {
  let out = "";
  const dec = new TextDecoder();
  return { line: new LiveLine((b) => out += dec.decode(b)), screen: () => render(out) };
}

Deno.test("a line printed while a bar is drawn goes above the bar, never onto it", () => {
  const t = capture();
  t.line.show("[####....]  50%");
  t.line.print("12:00:00 dave left");
  assert.deepEqual(t.screen(), ["12:00:00 dave left", "[####....]  50%"]);
  t.line.show("[#####...]  62%");
  assert.deepEqual(t.screen(), ["12:00:00 dave left", "[#####...]  62%"]);
});

Deno.test("clearing the bar leaves no stale line; a final text takes its place", () => {
  const t = capture();
  t.line.show("[#######.]  98%");
  t.line.clear();
  t.line.print("a.txt: 1.0 MiB, SHA-256 verified");
  assert.deepEqual(t.screen(), ["a.txt: 1.0 MiB, SHA-256 verified", ""]);
  t.line.show("[##......]  25%");
  t.line.clear("done");
  assert.deepEqual(t.screen(), ["a.txt: 1.0 MiB, SHA-256 verified", "done", ""]);
  assert.equal(t.line.shown, false);
});

Deno.test("without a bar, lines are just lines", () => {
  const t = capture();
  t.line.print("one");
  t.line.print("two");
  t.line.clear();
  assert.deepEqual(t.screen(), ["one", "two", ""]);
});
