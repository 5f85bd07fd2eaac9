/**
 * JSON lines to one stream, one write at a time, with a cap on what waits. A member that reads
 * slowly (or not at all) must not make its neighbours hold an ever-growing queue of room frames:
 * past `maxBytes` waiting, new lines are dropped and counted. One write at a time also keeps
 * writes in order while the stream's window is full (a mux stream refuses a second write() while
 * one waits).
 */
import { utf8 } from "../protocol/bytes.ts";
import type { MuxStream } from "./mux.ts";

/** What may wait for a slow reader. */
export const LINE_QUEUE_BYTES = 1024 * 1024;

export class LineQueue {
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #busy = false;
  #dropped = 0;

  constructor(readonly stream: MuxStream, readonly maxBytes = LINE_QUEUE_BYTES) {}

  /** Lines dropped because too much waited. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Queues `value` as one line; false when it was dropped (queue full, or the stream failed). */
  send(value: unknown): boolean {
    if (this.stream.failure) return false;
    const bytes = utf8(`${JSON.stringify(value)}\n`);
    if (this.#queued + bytes.length > this.maxBytes) {
      this.#dropped++;
      return false;
    }
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    if (!this.#busy) void this.#pump();
    return true;
  }

  async #pump(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#queue.length > 0) {
        const next = this.#queue.shift()!;
        // Called at once while idle, so a line queued just before the link closes goes out with it.
        await this.stream.write(next);
        this.#queued -= next.length;
      }
    } catch {
      this.#queue.length = 0;
      this.#queued = 0;
    } finally {
      this.#busy = false;
    }
  }
}

/** Each stream's queue for writeLine(), made on its first line. */
const queues = new WeakMap<MuxStream, LineQueue>();

/** Sends `value` as one JSON line on `stream`, after the lines sent before it (see LineQueue). */
export function writeLine(stream: MuxStream, value: unknown): void {
  let queue = queues.get(stream);
  if (!queue) queues.set(stream, queue = new LineQueue(stream));
  queue.send(value);
}
