import assert from "node:assert/strict";
import { configDir, dataDirFor, defaultConfigPath, keyFileFor, statusDirFor } from "../../src/cli/paths.ts";

Deno.test("the config file lives in the platform's usual per-user config folder", () => {
  assert.equal(defaultConfigPath({ HOME: "/home/bob" }, "linux"), "/home/bob/.config/mailmeet/config.json");
  assert.equal(
    defaultConfigPath({ HOME: "/Users/bob" }, "darwin"),
    "/Users/bob/Library/Application Support/mailmeet/config.json",
  );
  assert.match(
    defaultConfigPath({ APPDATA: "C:\\Users\\bob\\AppData\\Roaming" }, "windows")!,
    /AppData.Roaming.mailmeet.config\.json$/,
  );
});

Deno.test("XDG_CONFIG_HOME and XDG_DATA_HOME win on any platform; empty counts as unset", () => {
  assert.equal(configDir({ HOME: "/home/bob", XDG_CONFIG_HOME: "/cfg" }, "linux"), "/cfg/mailmeet");
  assert.equal(configDir({ HOME: "/Users/bob", XDG_CONFIG_HOME: "/cfg" }, "darwin"), "/cfg/mailmeet");
  assert.equal(configDir({ HOME: "/home/bob", XDG_CONFIG_HOME: "" }, "linux"), "/home/bob/.config/mailmeet");
  assert.equal(dataDirFor({ HOME: "/home/bob", XDG_DATA_HOME: "/data" }, "linux"), "/data/mailmeet");
  assert.equal(dataDirFor({ HOME: "/home/bob" }, "linux"), "/home/bob/.local/share/mailmeet");
  assert.equal(statusDirFor({ HOME: "/home/bob" }, "linux"), "/home/bob/.local/share/mailmeet/run");
});

Deno.test("with no home at all there is no default config file (and nothing is guessed)", () => {
  assert.equal(defaultConfigPath({}, "linux"), undefined);
  assert.equal(defaultConfigPath({ HOME: "" }, "darwin"), undefined);
});

Deno.test("init keeps the network key beside the config file", () => {
  assert.equal(
    keyFileFor("/home/bob/.config/mailmeet/config.json"),
    "/home/bob/.config/mailmeet/network.key",
  );
  assert.equal(keyFileFor("/srv/lan/host.json"), "/srv/lan/host.key");
});
