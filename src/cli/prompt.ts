/**
 * Questions on a terminal for `init`: a line with a default, and a password read in raw mode so it
 * is never echoed. Input comes from one byte reader so a typed-ahead answer is not lost between
 * questions; tests drive it with their own reader and writer.
 */
import { InterruptedError, UsageError } from "./errors.ts";

export interface PromptIo {
  read(p: Uint8Array): Promise<number | null>;
  write(text: string): void;
  /** Turns echo off (raw mode) for a secret; absent when the input is not a terminal. */
  setRaw?(raw: boolean): void;
}

/** The process's own terminal. */
export function terminalIo(): PromptIo {
  const enc = new TextEncoder();
  return {
    read: (p) => Deno.stdin.read(p),
    write: (text) => void Deno.stderr.writeSync(enc.encode(text)),
    setRaw: Deno.stdin.isTerminal() ? (raw) => Deno.stdin.setRaw(raw) : undefined,
  };
}

const CTRL_C = 0x03;
const CTRL_D = 0x04;
const BACKSPACE = 0x08;
const DEL = 0x7f;
/** Longest answer taken: a URL or a passphrase, not a file. */
const MAX_ANSWER = 4096;

export class Prompter {
  #pending: number[] = [];
  #dec = new TextDecoder();

  constructor(readonly io: PromptIo) {}

  /** Asks a question; Enter takes `fallback`. A closed input with no answer and no fallback is an error. */
  async ask(question: string, fallback?: string): Promise<string> {
    this.io.write(fallback ? `${question} [${fallback}]: ` : `${question}: `);
    const line = await this.#line(false);
    if (line === null) {
      if (fallback !== undefined) return fallback;
      throw new UsageError(
        `The input ended before "${question}" was answered; run \`mailmeet init\` again.`,
        "input_ended",
      );
    }
    const answer = line.trim();
    return answer === "" && fallback !== undefined ? fallback : answer;
  }

  /** Yes or no; Enter takes `fallback`. */
  async confirm(question: string, fallback: boolean): Promise<boolean> {
    for (let i = 0; i < 5; i++) {
      this.io.write(`${question} (${fallback ? "Y/n" : "y/N"}): `);
      const line = await this.#line(false);
      const a = (line ?? "").trim().toLowerCase();
      if (line === null || a === "") return fallback;
      if (a === "y" || a === "yes") return true;
      if (a === "n" || a === "no") return false;
      this.io.write("Please answer y or n.\n");
    }
    return fallback;
  }

  /** Reads a secret without echoing it (nothing is printed, not even stars). */
  async secret(question: string): Promise<string> {
    this.io.write(`${question} (not shown): `);
    this.io.setRaw?.(true);
    let line: string | null;
    try {
      line = await this.#line(true);
    } finally {
      this.io.setRaw?.(false);
      this.io.write("\n");
    }
    if (line === null) {
      throw new UsageError(
        `The input ended before "${question}" was answered; run \`mailmeet init\` again.`,
        "input_ended",
      );
    }
    return line;
  }

  /** One line of bytes; in raw mode also handles Backspace, Ctrl-C and Ctrl-D ourselves. */
  async #line(raw: boolean): Promise<string | null> {
    const bytes: number[] = [];
    for (;;) {
      const b = await this.#byte();
      if (b === null) return bytes.length ? this.#dec.decode(new Uint8Array(bytes)) : null;
      if (b === 0x0a || b === 0x0d) {
        // A CR LF pair from a pasted line or a Windows pipe: drop the LF that follows.
        if (b === 0x0d && this.#pending[0] === 0x0a) this.#pending.shift();
        return this.#dec.decode(new Uint8Array(bytes));
      }
      // Raw mode turns off the terminal's own Ctrl-C: it is ours to honour, as an interruption (130).
      if (raw && b === CTRL_C) throw new InterruptedError("Cancelled; nothing was written.");
      if (raw && b === CTRL_D && bytes.length === 0) return null;
      if (raw && (b === DEL || b === BACKSPACE)) {
        // Drop one whole UTF-8 character: continuation bytes are 10xxxxxx.
        while (bytes.length && (bytes[bytes.length - 1] & 0xc0) === 0x80) bytes.pop();
        bytes.pop();
        continue;
      }
      if (bytes.length >= MAX_ANSWER) throw new UsageError(`An answer longer than ${MAX_ANSWER} bytes.`);
      bytes.push(b);
    }
  }

  async #byte(): Promise<number | null> {
    if (this.#pending.length === 0) {
      const buf = new Uint8Array(1024);
      const n = await this.io.read(buf);
      if (n === null || n === 0) return null;
      this.#pending.push(...buf.subarray(0, n));
    }
    return this.#pending.shift()!;
  }
}
