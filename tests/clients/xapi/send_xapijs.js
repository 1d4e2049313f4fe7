// xAPI.js (npm `@xapi/xapi`) sends answers to spoc-engine's xAPI endpoint:
// sendStatement and sendStatements with and without ids, in xAPI 1.0.3 and
// 2.0.0, through its axios and fetch adapters, and statements with
// attachments (multipart/mixed). Exits non-zero
// unless every call succeeds with the ids expected; prints
// {"client", "answers"} last.
"use strict";
const crypto = require("crypto");
const XAPI = require("@xapi/xapi");
const { env, endpoint, learner, item } = require("./env");
const auth = XAPI.toBasicAuth(env("XAPI_USERNAME"), env("XAPI_PASSWORD"));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

// Each answer takes another duration: the engine takes two statements
// without id and timestamp and with the same content for one sent twice.
let seconds = 10;
const answer = (success, id) => ({
  ...(id ? { id } : {}),
  actor: { objectType: "Agent", mbox: `mailto:${learner}`, name: "xAPI.js learner" },
  verb: XAPI.Verbs.ANSWERED,
  object: { objectType: "Activity", id: item },
  result: { success, duration: `PT${(seconds += 1)}S` },
});

// The reply must list one UUID per statement, the given ids unchanged.
const checkIds = (what, reply, sent) => {
  const ids = reply.data;
  if (reply.status !== 200 || !Array.isArray(ids) || ids.length !== sent.length) {
    throw new Error(`${what}: status ${reply.status}, body ${JSON.stringify(ids)}`);
  }
  sent.forEach((statement, i) => {
    if (!UUID.test(ids[i]) || (statement.id && statement.id !== ids[i])) {
      throw new Error(`${what}: id ${ids[i]} for statement ${i} (sent ${statement.id})`);
    }
  });
  const version = reply.headers["x-experience-api-version"];
  return version;
};

async function run(version, adapter) {
  const xapi = new XAPI({ endpoint, auth, version, adapter });
  let answers = 0;
  const one = answer(true);
  const echoed = checkIds("sendStatement without id", await xapi.sendStatement({ statement: one }), [one]);
  if (echoed !== version) throw new Error(`asked in ${version}, answered in ${echoed}`);
  const withId = answer(false, crypto.randomUUID());
  checkIds("sendStatement with id", await xapi.sendStatement({ statement: withId }), [withId]);
  const batch = [answer(true), answer(true, crypto.randomUUID())];
  checkIds("sendStatements", await xapi.sendStatements({ statements: batch }), batch);
  answers += 4;

  const data = Buffer.from(`notes sent in xAPI ${version}\n`, "utf8");
  const attachment = {
    usageType: XAPI.AttachmentUsages.SUPPORTING_MEDIA,
    display: { "en-US": "working notes" },
    contentType: "text/plain",
    length: data.length,
    sha2: crypto.createHash("sha256").update(data).digest("hex"),
  };
  const attached = { ...answer(true, crypto.randomUUID()), attachments: [attachment] };
  checkIds(
    "sendStatement with an attachment",
    await xapi.sendStatement({ statement: attached, attachments: [data] }),
    [attached],
  );
  const attachedBatch = [
    { ...answer(false), attachments: [attachment] },
    { ...answer(true), attachments: [attachment] },
  ];
  checkIds(
    "sendStatements with attachments",
    await xapi.sendStatements({ statements: attachedBatch, attachments: [data, data] }),
    attachedBatch,
  );
  answers += 3;
  return answers;
}

async function main() {
  let answers = 0;
  // axios (the default) labels a multipart body application/octet-stream
  // in Node; fetch keeps the multipart/mixed header.
  for (const version of ["1.0.3", "2.0.0"]) {
    for (const adapter of ["axios", "fetch"]) answers += await run(version, adapter);
  }
  console.log(JSON.stringify({ client: "xapijs", answers }));
}

main().catch((err) => {
  const body = err.response ? ` ${err.response.status} ${JSON.stringify(err.response.data)}` : "";
  console.error((err.stack || String(err)) + body);
  process.exit(1);
});
