/** Errors the CLI shows as one sentence, and the exit codes of the CLI contract. */
import { MailError } from "../mail/errors.ts";
import { OAuthError } from "../oauth/errors.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { TableStoreError } from "../table/store.ts";

export const EXIT = {
  ok: 0,
  usage: 1,
  mail: 2,
  noPeer: 3,
  /** send/receive: the transfer was declined or broke off. */
  transfer: 4,
  /** Ctrl-C or SIGTERM (128 + SIGINT, as a shell reports a process killed by Ctrl-C). */
  interrupted: 130,
} as const;

/** What kind of usage error: "input_ended" when a question went unanswered because the input closed. */
export type UsageErrorCode = "usage" | "input_ended";

/** Bad usage or configuration: the message says what to change. */
export class UsageError extends Error {
  constructor(message: string, readonly code: UsageErrorCode = "usage") {
    super(message);
    this.name = "UsageError";
  }
}

/** No peer connected before --timeout. */
export class NoPeerError extends Error {
  readonly code = "no_peer";
  constructor(message: string) {
    super(message);
    this.name = "NoPeerError";
  }
}

/**
 * Stopped by Ctrl-C (or SIGTERM) before the work was done: exit 130, never 0. The message says
 * how far it got and what was kept ("Interrupted before bob connected; nothing was sent.").
 */
export class InterruptedError extends Error {
  readonly code = "interrupted";
  constructor(message = "Interrupted.") {
    super(message);
    this.name = "InterruptedError";
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof InterruptedError) return EXIT.interrupted;
  if (err instanceof NoPeerError) return EXIT.noPeer;
  if (err instanceof MailError) return err.code === "config" ? EXIT.usage : EXIT.mail;
  // Could not reach the provider's sign-in servers: like a mail server that cannot be reached.
  if (err instanceof OAuthError) return err.code === "unreachable" ? EXIT.mail : EXIT.usage;
  return EXIT.usage;
}

/** One sentence for the user; never a stack trace (that is for --debug). */
export function sentenceFor(err: unknown): string {
  if (
    err instanceof UsageError || err instanceof NoPeerError || err instanceof MailError ||
    err instanceof InterruptedError ||
    err instanceof ProtocolError || err instanceof TableStoreError || err instanceof OAuthError
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

/** Why the listener could not open on `where` (--listen), as one sentence that says what to pick instead. */
export function listenError(where: string, err: unknown): Error {
  const at = `Cannot listen on ${where}`;
  if (err instanceof Deno.errors.AddrNotAvailable) {
    const host = where.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
    return new UsageError(
      `${at}: ${host} is not an address of this machine; use --listen 0.0.0.0:PORT (all of its addresses) or one of its own.`,
    );
  }
  if (err instanceof Deno.errors.AddrInUse) {
    return new UsageError(
      `${at}: another program has that port (maybe a running mailmeet: \`mailmeet status\`); pick another --listen port, or 0 for any free one.`,
    );
  }
  if (err instanceof Deno.errors.PermissionDenied && !/--allow-/.test(err.message)) {
    return new UsageError(
      `${at}: the system does not let this user open that port (ports below 1024 need administrator rights); pick a port above 1024.`,
    );
  }
  return err instanceof Error ? err : new Error(String(err));
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
