/** Errors of the NAT lab: one sentence a developer can act on, and a code a test can match. */

export type LabErrorCode =
  | "unsupported" // not root, or `ip` / `nft` missing: the lab tests skip
  | "bad-spec" // the LabSpec asks for something the lab cannot build
  | "unknown-name" // lab.host("nope"), lab.router() of a site without a router
  | "command-failed" // ip, nft or a tool exited non-zero
  | "tools-missing" // coturn or miniupnpd are not unpacked and scripts/natlab/tools.sh failed
  | "daemon-failed" // coturn or miniupnpd exited or never listened
  | "disposed" // spawn() on a lab that was already torn down
  | "teardown-failed"; // a namespace survived `ip netns del`

export interface LabErrorOptions {
  /** The command line that failed, for the reader of a test log. */
  command?: string;
  /** What the command or daemon printed (appended to the message on its own lines). */
  output?: string;
  cause?: unknown;
}

export class LabError extends Error {
  readonly command?: string;

  constructor(message: string, readonly code: LabErrorCode, options: LabErrorOptions = {}) {
    super(options.output?.trim() ? `${message}\n${options.output.trimEnd()}` : message, {
      cause: options.cause,
    });
    this.name = "LabError";
    this.command = options.command;
  }
}
