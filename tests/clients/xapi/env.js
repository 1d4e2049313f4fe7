// What every JavaScript client reads from the environment that
// tests/it/xapi_clients.rs sets: a setting that is missing stops the client
// at once, naming it.
"use strict";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

module.exports = {
  env,
  endpoint: env("XAPI_ENDPOINT"),
  learner: env("XAPI_LEARNER"),
  item: env("XAPI_ITEM"),
};
