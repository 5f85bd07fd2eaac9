import assert from "node:assert/strict";
import { BACKGROUND_NICE, runInBackground } from "../../src/cli/background_priority.ts";

Deno.test("a bulk app asks for background CPU priority (nice 10)", () => {
  const asked: number[] = [];
  assert.equal(runInBackground((p) => asked.push(p)), true);
  assert.deepEqual(asked, [BACKGROUND_NICE]);
  assert.equal(BACKGROUND_NICE, 10);
});

Deno.test("a bulk app where priority cannot be changed (no --allow-sys, refused) runs on at normal priority", () => {
  assert.equal(
    runInBackground(() => {
      throw new Deno.errors.NotCapable("Requires sys access");
    }),
    false,
  );
});
