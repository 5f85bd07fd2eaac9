/** Errors the CLI shows as one sentence, and the exit codes of the CLI contract. */
import { MailError } from "../mail/errors.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { TableStoreError } from "../table/store.ts";

export const EXIT = {
  ok: 0,
  usage: 1,
  mail: 2,
  noPeer: 3,
} as const;

/** Bad usage or configuration: the message says what to change. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** No peer connected before --timeout. */
export class NoPeerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NoPeerError";
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof NoPeerError) return EXIT.noPeer;
  if (err instanceof MailError) return err.code === "config" ? EXIT.usage : EXIT.mail;
  return EXIT.usage;
}

/** One sentence for the user; never a stack trace (that is for --debug). */
export function sentenceFor(err: unknown): string {
  if (
    err instanceof UsageError || err instanceof NoPeerError || err instanceof MailError ||
    err instanceof ProtocolError || err instanceof TableStoreError
  ) return err.message;
  if (err instanceof Deno.errors.PermissionDenied) {
    // Deno's own text names the permission ("Requires net access to …, run again with --allow-net").
    const text = err.message.replace(/\.$/, "");
    return /--allow-/.test(text)
      ? `Deno did not grant mailmeet a permission it needs: ${text}.`
      : `Permission denied: ${text}. Check the owner and mode of the file or folder.`;
  }
  if (err instanceof Deno.errors.AddrInUse) {
    return `The listen address is in use (${err.message}); pick another --listen port.`;
  }
  const text = err instanceof Error ? err.message : String(err);
  return `Unexpected error: ${text} (run with --debug for details).`;
}

/** The --json form of a failure: what main prints on stdout beside the sentence on stderr. */
export function errorEvent(
  err: unknown,
  exit: number,
): { event: "error"; message: string; code?: string; exit: number } {
  return {
    event: "error",
    message: sentenceFor(err),
    ...(err instanceof MailError ? { code: err.code } : {}),
    exit,
  };
}
