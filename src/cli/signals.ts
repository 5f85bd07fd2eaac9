/**
 * Ctrl-C and SIGTERM: every long-running command stops cleanly (links closed and the peer told,
 * partial files kept, the mailbox logged out) and exits 130. Cleanup gets a short grace; a process
 * still busy after it (a server that does not answer a LOGOUT, a peer that stopped reading) ends
 * anyway, and a second Ctrl-C ends it at once.
 */
import { EXIT } from "./errors.ts";

/** How long cleanup may take after Ctrl-C before the process ends regardless. */
export const INTERRUPT_GRACE_MS = 1_000;

export interface Interrupt extends Disposable {
  /** Aborts on the first Ctrl-C / SIGTERM. */
  readonly signal: AbortSignal;
  /** True once a signal arrived (as opposed to the command ending on its own). */
  readonly interrupted: boolean;
  /** The sentence that says how far the work got; printed even if cleanup is then cut short. */
  explain(sentence: string): void;
}

const encoder = new TextEncoder();

let report = (sentence: string): void =>
  void Deno.stderr.writeSync(encoder.encode(`mailmeet: ${sentence}\n`));

/** How a forced exit says its sentence (main.ts: on stderr, and as an error event with --json). */
export function reportForcedExit(fn: (sentence: string) => void): void {
  report = fn;
}

function exitNow(sentence: string): never {
  try {
    report(sentence);
  } catch {
    // stderr is gone: the exit status still says it
  }
  Deno.exit(EXIT.interrupted);
}

export function interruptSignal(graceMs = INTERRUPT_GRACE_MS): Interrupt {
  const ctl = new AbortController();
  let interrupted = false;
  let grace: ReturnType<typeof setTimeout> | undefined;
  let explained: string | undefined;
  const onSignal = () => {
    if (interrupted) exitNow(explained ?? "Interrupted; stopped at once on the second Ctrl-C.");
    interrupted = true;
    ctl.abort();
    grace = setTimeout(
      () =>
        exitNow(
          explained ?? `Interrupted; cleanup took longer than ${graceMs / 1000} s, so it was cut short.`,
        ),
      graceMs,
    );
    // The grace timer must never be what keeps a finished process alive.
    Deno.unrefTimer(grace);
  };
  const sigs: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const s of sigs) Deno.addSignalListener(s, onSignal);
  return {
    signal: ctl.signal,
    get interrupted() {
      return interrupted;
    },
    explain(sentence: string) {
      explained = sentence;
    },
    [Symbol.dispose]() {
      for (const s of sigs) Deno.removeSignalListener(s, onSignal);
      // After the command returned, main exits with its code; the grace timer is not needed.
      clearTimeout(grace);
    },
  };
}
