/** The local control connection's frames: what sendv() writes, receive() gives back whole. */
import assert from "node:assert/strict";
import { concat } from "../../src/protocol/bytes.ts";
import fc from "fast-check";
import { ControlChannel } from "../../src/node/control_channel.ts";
import { memoryPipe } from "../helpers/mem_pipe.ts";

Deno.test("frames of small and large parts, copied together or written as they are, arrive whole and in order", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 64 }),
            fc.integer({ min: 16 * 1024 - 2, max: 40 * 1024 }).map((n) =>
              new Uint8Array(n).map((_, i) => (i * 7 + n) & 0xff)
            ),
          ),
          { maxLength: 5 },
        ),
        { minLength: 1, maxLength: 6 },
      ),
      async (frames) => {
        const [x, y] = memoryPipe(4 * 1024 * 1024);
        const a = new ControlChannel(x, "dialer");
        const b = new ControlChannel(y, "listener");
        for (const parts of frames) await a.sendv(parts);
        for (const parts of frames) {
          const got = await b.receive();
          assert.deepEqual(got, concat(...parts));
          // A large frame's buffer may go back for the next one: what was read must already be checked.
          if (got && got.buffer.byteLength > got.length) b.recycle(got.buffer as ArrayBuffer);
        }
        a.abort();
        b.abort();
      },
    ),
    { numRuns: 40 },
  );
});
