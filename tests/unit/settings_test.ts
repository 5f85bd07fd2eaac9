import assert from "node:assert/strict";
import { type ExtraNames, type Resolved, resolveOptions } from "../../src/cli/options.ts";
import type { SEND_EXTRAS } from "../../src/cli/commands/send.ts";
import type { INIT_EXTRAS } from "../../src/cli/commands/init.ts";
import { addresses, flag, list, num, str } from "../../src/cli/context.ts";
import { UsageError } from "../../src/cli/errors.ts";

Deno.test("settings are read by name: defaults, milliseconds, empty strings and unset lists", async () => {
  const r = await resolveOptions(["--timeout", "90", "--user", "", "--via", "Host@Game.test"], {});
  const marker: string = str(r, "marker");
  const timeout: number = num(r, "timeout");
  const user: string | undefined = str(r, "user");
  assert.equal(marker, "mailmeet rendezvous");
  assert.equal(str(r, "listen"), "0.0.0.0:0");
  assert.equal(timeout, 90_000);
  assert.equal(num(r, "capacity"), 1000);
  assert.equal(user, undefined, "an empty string reads as not set");
  assert.equal(flag(r, "json"), false);
  assert.deepEqual(list(r, "friend"), []);
  assert.deepEqual(addresses(r, "via"), ["host@game.test"]);
  assert.throws(
    () => addresses({ ...r, values: { ...r.values, via: ["not an address"] } }, "via"),
    (e: Error) => e instanceof UsageError && e.message === "--via not an address is not an e-mail address.",
  );
});

/**
 * Checked by `deno check` (and so by `deno test`): each line below must fail to compile, or the
 * @ts-expect-error above it is itself an error. The function is never called.
 */
function _settingsAreTypedByTheOptionTable(r: Awaited<ReturnType<typeof resolveOptions>>): void {
  const is = <T>(_value: T) => {};
  // @ts-expect-error: a misspelt option name
  str(r, "markr");
  // @ts-expect-error: a misspelt option name
  flag(r, "jsn");
  // @ts-expect-error: a misspelt option name
  r.values.timout;
  // @ts-expect-error: a misspelt option name
  r.sources.adress;
  // @ts-expect-error: --marker is a string, not a number
  num(r, "marker");
  // @ts-expect-error: --timeout is a duration, not a string
  str(r, "timeout");
  // @ts-expect-error: --address is a string, not a switch
  flag(r, "address");
  // @ts-expect-error: --json is a switch, not a list
  list(r, "json");
  // @ts-expect-error: --address is a single string, not a list of addresses
  addresses(r, "address");
  // @ts-expect-error: --friend lists user ids, not e-mail addresses
  addresses(r, "friend");
  is<string>(str(r, "marker"));
  is<number>(num(r, "max-links"));
  // @ts-expect-error: --user has no default, so it may be undefined
  is<string>(str(r, "user"));
  // @ts-expect-error: --via is a list of strings
  is<number>(r.values.via);
}
void _settingsAreTypedByTheOptionTable;

/** As above, for the options only one command takes: each command reads only the ones it declared. */
function _extrasAreTypedByTheirCommand(
  send: Resolved<ExtraNames<typeof SEND_EXTRAS>>,
  init: Resolved<ExtraNames<typeof INIT_EXTRAS>>,
): void {
  send.extra.to;
  init.extra["oauth-client-id"];
  // @ts-expect-error: a misspelt extra option
  send.extra.too;
  // @ts-expect-error: --force is receive's and init's, not send's
  send.extra.force;
  // @ts-expect-error: a misspelt extra option
  init.extra["oauth-clientid"];
}
void _extrasAreTypedByTheirCommand;
