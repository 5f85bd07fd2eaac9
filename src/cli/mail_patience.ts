/** How a started node or host says it waits out the mail server (issue 11), as events. */
import { Patience } from "../mail/patience.ts";
import type { EventSink } from "../roles/events.ts";

/**
 * Waits out mail server outages until `deadline()` (Infinity: for ever), saying once per outage
 * that it waits (a `waiting` event, shown in human mode) and, in --verbose, when it is over.
 */
export function mailPatience(events: EventSink, deadline: () => number = () => Infinity): Patience {
  return new Patience({
    deadline,
    onWaiting: (what, err, until) =>
      events({
        event: "waiting",
        reason: `waiting for the mail server (${what}): ${err.message}` +
          (until < Infinity
            ? ` Retrying for up to ${Math.max(1, Math.round((until - Date.now()) / 1000))} s.`
            : ""),
      }),
    onRecovered: (what, ms) =>
      events({
        event: "info",
        message: `the mail server answers again (${what}, after ${Math.round(ms / 1000)} s)`,
      }),
  });
}
