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
  if (err instanceof Deno.errors.PermissionDenied) return `Permission denied: ${err.message}.`;
  if (err instanceof Deno.errors.AddrInUse) {
    return `The listen address is in use (${err.message}); pick another --listen port.`;
  }
  const text = err instanceof Error ? err.message : String(err);
  return `Unexpected error: ${text} (run with --debug for details).`;
}
