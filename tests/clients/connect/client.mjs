// A real Connect client (connect-es 2 on Node) against `spoc serve`'s HTTP
// listener, with no generated code: the services come from the engine's
// descriptor set, read at run time. Run by tests/connect_http.rs, which
// starts the server and passes:
//   SPOC_URL         http://127.0.0.1:PORT (the HTTP listener)
//   SPOC_DESCRIPTOR  the FileDescriptorSet of proto/spoc/v1 (binary)
//   SPOC_ADMIN_KEY   an admin key
//   SPOC_LMS_KEY     an lms key
// Prints one JSON line with what the Rust side cross-checks through gRPC;
// any failed check throws, and the process exits non-zero.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const baseUrl = env("SPOC_URL");
const registry = createFileRegistry(
  fromBinary(FileDescriptorSetSchema, readFileSync(env("SPOC_DESCRIPTOR"))),
);

/** A client of `spoc.v1.<name>` sending `key` (none if undefined). */
function client(name, key, { binary = false } = {}) {
  const service = registry.getService(`spoc.v1.${name}`);
  assert.ok(service, `no service spoc.v1.${name} in the descriptor set`);
  const withKey = (next) => async (request) => {
    if (key) request.header.set("Authorization", `Bearer ${key}`);
    return next(request);
  };
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    useBinaryFormat: binary,
    interceptors: [withKey],
  });
  return createClient(service, transport);
}

/** The ConnectError `call` rejects with. */
async function refusal(call) {
  try {
    await call();
  } catch (error) {
    return ConnectError.from(error);
  }
  assert.fail("the call succeeded");
}

const admin = env("SPOC_ADMIN_KEY");
const lms = env("SPOC_LMS_KEY");
// Ten minutes ago: news to the alert rules, and live (not a bulk load).
const T0 = Date.now() - 600_000;

// Catalog, learner, program, enrolment: JSON, admin key.
const imported = await client("CatalogService", admin).importCatalog({
  skills: [
    { id: "a", name: "Skill a" },
    { id: "b", name: "Skill b", prerequisiteIds: ["a"] },
  ],
});
assert.equal(imported.skillsUpserted, 2);
await client("LearnerService", admin).upsertLearner({
  learner: { id: "ann", companyId: "acme", language: "fr", timeZone: "Europe/Paris" },
});
await client("ProgramService", admin).upsertProgram({
  program: { id: "excel", name: "Excel for analysts", skillIds: ["a", "b"] },
});
await client("LearnerService", admin).enrollLearner({ learnerId: "ann", programId: "excel" });

// Attempts in protobuf, with the lms key; mastery read back in JSON.
const attempt = (id, skill, correct, ms) => ({
  attemptId: id,
  learnerId: "ann",
  itemId: `item-${id}`,
  skillIds: [skill],
  correct,
  occurredAt: timestampFromMs(ms),
  timeSpent: { seconds: 30n },
});
await client("MasteryService", lms, { binary: true }).recordAttempts({
  attempts: [attempt("js-1", "a", true, T0), attempt("js-2", "a", true, T0 + 1000)],
});
const mastery = await client("MasteryService", lms).getMastery({ learnerId: "ann" });
const skillA = mastery.skills.find((s) => s.skillId === "a");
assert.ok(skillA, "mastery of skill a");
assert.equal(skillA.attemptCount, 2);

// A field error: invalid_argument with a BadRequest naming the field.
const invalid = await refusal(() =>
  client("LearnerService", admin).upsertLearner({ learner: { id: "", companyId: "acme" } }),
);
assert.equal(invalid.code, Code.InvalidArgument);
assert.equal(invalid.details[0].type, "google.rpc.BadRequest");
assert.equal(invalid.details[0].debug.fieldViolations[0].field, "learner.id");

// No key; a role that may not call the method.
const anonymous = await refusal(() => client("CatalogService").listSkills({}));
assert.equal(anonymous.code, Code.Unauthenticated);
const denied = await refusal(() =>
  client("AdminService", lms).createApiKey({ role: 2, displayName: "no" }),
);
assert.equal(denied.code, Code.PermissionDenied);

// WatchAlerts: three failures on b make a blocking point; the stream
// (Connect server streaming over HTTP/1.1) brings it, as the snapshot or
// as a change, whichever comes first.
await client("MasteryService", lms).recordAttempts({
  attempts: [0, 1, 2].map((k) => attempt(`js-b${k}`, "b", false, T0 + 10_000 + k * 1000)),
});
let watched;
// Cancelled through its signal: connect-node over HTTP/1.1 keeps the
// request open when the loop merely breaks.
const stop = new AbortController();
try {
  const events = client("AlertService", admin).watchAlerts(
    { programId: "excel" },
    { signal: stop.signal },
  );
  for await (const event of events) {
    if (event.alert?.learnerId === "ann") {
      watched = event.alert;
      stop.abort();
    }
  }
} catch (error) {
  assert.equal(ConnectError.from(error).code, Code.Canceled, String(error));
}
assert.ok(watched, "an alert for ann");

// A stream that ends with an error.
const missing = await refusal(async () => {
  for await (const _ of client("AlertService", admin).watchAlerts({ programId: "nope" })) {
    // nothing expected
  }
});
assert.equal(missing.code, Code.NotFound);

console.log(
  JSON.stringify({
    pMasteredA: skillA.pMastered,
    alertId: watched.id,
    alertSkill: watched.skillId,
  }),
);
