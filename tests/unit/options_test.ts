import assert from "node:assert/strict";
import { resolveOptions } from "../../src/cli/options.ts";
import { UsageError } from "../../src/cli/errors.ts";
import { parseDuration } from "../../src/cli/duration.ts";

async function withConfig(data: unknown, fn: (path: string) => Promise<void>) {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(path, JSON.stringify(data));
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("a flag beats the environment, which beats the config file, which beats the default", async () => {
  await withConfig({ user: "from-file", marker: "file marker", capacity: 5 }, async (path) => {
    const env = { MAILMEET_USER: "from-env", MAILMEET_MARKER: "env marker" };
    const r = await resolveOptions(["join", "--config", path, "--user", "from-flag"], env);
    assert.equal(r.values.user, "from-flag");
    assert.equal(r.sources.user, "flag");
    assert.equal(r.values.marker, "env marker");
    assert.equal(r.sources.marker, "env");
    assert.equal(r.values.capacity, 5);
    assert.equal(r.sources.capacity, "file");
    assert.equal(r.values["reply-limit"], 16);
    assert.equal(r.sources["reply-limit"], "default");
  });
});

Deno.test("the config file can also be named by MAILMEET_CONFIG", async () => {
  await withConfig({ address: "bob@isp-b.test" }, async (path) => {
    const r = await resolveOptions([], { MAILMEET_CONFIG: path });
    assert.equal(r.values.address, "bob@isp-b.test");
  });
});

Deno.test("repeatable options take several flags, or a comma list from env and an array from the file", async () => {
  assert.deepEqual((await resolveOptions(["--via", "a@x", "--via", "b@y"], {})).values.via, ["a@x", "b@y"]);
  assert.deepEqual((await resolveOptions([], { MAILMEET_VIA: "a@x, b@y" })).values.via, ["a@x", "b@y"]);
  await withConfig({ via: ["c@z"] }, async (path) => {
    assert.deepEqual((await resolveOptions(["--config", path], {})).values.via, ["c@z"]);
  });
});

Deno.test("the command defaults to join, and --host means host", async () => {
  assert.equal((await resolveOptions([], {})).command, "join");
  assert.equal((await resolveOptions(["--host"], {})).command, "host");
  assert.equal((await resolveOptions(["table", "--db", "x"], {})).command, "table");
});

Deno.test("durations and numbers are checked, with the option named", async () => {
  assert.equal((await resolveOptions(["--ttl", "30m"], {})).values.ttl, 30 * 60_000);
  assert.equal((await resolveOptions(["--timeout", "90"], {})).values.timeout, 90_000);
  await assert.rejects(() => resolveOptions(["--ttl", "soon"], {}), /--ttl soon is not a duration/);
  await assert.rejects(() => resolveOptions(["--capacity", "0"], {}), /--capacity must be a whole number/);
  await assert.rejects(() => resolveOptions([], { MAILMEET_CAPACITY: "lots" }), /MAILMEET_CAPACITY must be/);
  assert.equal(parseDuration("500ms", "x"), 500);
  assert.equal(parseDuration("2d", "x"), 2 * 86_400_000);
});

Deno.test("unknown flags and unknown config keys are usage errors", async () => {
  await assert.rejects(() => resolveOptions(["--frobnicate"], {}), UsageError);
  await withConfig({ adress: "typo@x" }, async (path) => {
    await assert.rejects(() => resolveOptions(["--config", path], {}), /unknown setting "adress"/);
  });
  await withConfig([1, 2], async (path) => {
    await assert.rejects(() => resolveOptions(["--config", path], {}), /one JSON object/);
  });
  await assert.rejects(
    () => resolveOptions(["--config", "/nonexistent/x.json"], {}),
    /Cannot read the config file/,
  );
});

Deno.test("parser complaints become one sentence: did you mean, a value that starts with a dash, a missing value", async () => {
  await assert.rejects(
    () => resolveOptions(["--adress", "a@x"], {}),
    /^UsageError: Unknown option --adress \(did you mean --address\?\); run `mailmeet --help` for the options\.$/,
  );
  await assert.rejects(() => resolveOptions(["--timeout", "-5"], {}), /--timeout cannot be negative \(-5\)/);
  await assert.rejects(() => resolveOptions(["--capacity", "-3"], {}), /--capacity must be a whole number/);
  await assert.rejects(
    () => resolveOptions(["--via", "--json"], {}),
    /--via needs a value, but --json follows it\./,
  );
  await assert.rejects(
    () => resolveOptions(["--timeout"], {}),
    /^UsageError: --timeout needs a value \(--timeout SECONDS\)\.$/,
  );
  await assert.rejects(() => resolveOptions(["--json=yes"], {}), /--json is a switch and takes no value/);
  for (const args of [["--adress", "x"], ["--timeout", "-5"], ["--timeout"], ["-x"]]) {
    await assert.rejects(() => resolveOptions(args, {}), (e: Error) => !e.message.includes("\n"));
  }
  await withConfig({ adress: "typo@x" }, async (path) => {
    await assert.rejects(
      () => resolveOptions(["--config", path], {}),
      /unknown setting "adress" \(did you mean "address"\?\)/,
    );
  });
});

Deno.test("--timeout 0 is allowed: wait for ever", async () => {
  assert.equal((await resolveOptions(["--timeout", "0"], {})).values.timeout, 0);
});
