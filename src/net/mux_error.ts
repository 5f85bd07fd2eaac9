export type MuxErrorCode =
  | "reset" // the stream was reset, by either side
  | "closed" // the link ended, or the stream was closed for writing
  | "protocol" // the other side broke the mux protocol
  | "busy"; // read() or write() while another of the same on the stream was still waiting

export class MuxError extends Error {
  constructor(message: string, readonly code: MuxErrorCode, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "MuxError";
  }
}
