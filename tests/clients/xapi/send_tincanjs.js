// TinCanJS (npm `tincanjs`) sends answers to spoc-engine's xAPI endpoint:
// sendStatement with and without an id, sendStatements with and without
// ids, and a statement with an attachment (multipart/mixed). Exits non-zero
// unless every call reports success; prints {"client", "answers"} last.
"use strict";
const TinCan = require("tincanjs");
const { env, endpoint, learner, item } = require("./env");

const tincan = new TinCan({
  recordStores: [
    {
      endpoint,
      username: env("XAPI_USERNAME"),
      password: env("XAPI_PASSWORD"),
      allowFail: false,
    },
  ],
});

// An answer; `stamp` false leaves id and timestamp to the server. Each
// answer takes another duration: the engine takes two statements without
// id and timestamp and with the same content for one sent twice.
let seconds = 10;
const answer = (success, stamp, extra = {}) =>
  new TinCan.Statement(
    {
      actor: { mbox: `mailto:${learner}`, name: "TinCanJS learner" },
      verb: { id: "http://adlnet.gov/expapi/verbs/answered", display: { "en-US": "answered" } },
      target: { id: item, objectType: "Activity" },
      result: { success, duration: `PT${(seconds += 1)}S` },
      ...extra,
    },
    { doStamp: stamp },
  );

// Resolves when every record store answered 2xx.
const check = (what) => (resolve, reject) => (results) => {
  const failed = (results || []).filter((r) => r.err !== null);
  if (!results || results.length !== 1 || failed.length > 0) {
    const detail = failed.map((r) => `${r.err} ${r.xhr && r.xhr.responseText}`);
    reject(new Error(`${what} failed: ${detail.join("; ")}`));
  } else {
    resolve(results[0].xhr.status);
  }
};
const send = (what, statement) =>
  new Promise((resolve, reject) => tincan.sendStatement(statement, check(what)(resolve, reject)));
const sendAll = (what, statements) =>
  new Promise((resolve, reject) => tincan.sendStatements(statements, check(what)(resolve, reject)));

async function main() {
  let answers = 0;
  const status = [];
  status.push(await send("sendStatement without id", answer(true, false)));
  status.push(await send("sendStatement with id", answer(false, true)));
  answers += 2;
  status.push(await sendAll("sendStatements without ids", [answer(true, false), answer(true, false)]));
  status.push(await sendAll("sendStatements with ids", [answer(true, true), answer(false, true)]));
  answers += 4;
  const notes = new TinCan.Attachment({
    usageType: "http://id.tincanapi.com/attachment/supporting_media",
    display: { "en-US": "working notes" },
    contentType: "text/plain",
  });
  notes.setContent("x = 42, checked twice\n");
  status.push(await send("sendStatement with an attachment", answer(true, true, { attachments: [notes] })));
  answers += 1;
  console.error(`statuses: ${status.join(" ")}`);
  console.log(JSON.stringify({ client: "tincanjs", answers }));
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
