// The npm `authy-client` (ruimarinho/authy-client, pinned in package.json beside this file)
// against an Authy API: the built-in simulator in tests/it/conformance.rs.
//
// Usage: node authy_client.mjs BASE_URL API_KEY NPM_PREFIX
//   NPM_PREFIX: the folder whose node_modules holds authy-client (.ci/run installs it into
//   target/authy-client-npm with `npm ci` from this folder's package.json and package-lock.json).
//
// Every check is the library's own expectation of Authy (ruimarinho/authy-client src/client.js,
// src/parsers/response-parser.js):
// - registerUser posts JSON `{"user": {"cellphone", "country_code", "email"}}` with the phone
//   normalised by libphonenumber; it asserts `message === "User created successfully."` and a
//   numeric `user.id`.
// - createApprovalRequest posts JSON `{details, hidden_details, logos, message,
//   seconds_to_expire}` and asserts `approval_request.uuid` is a string.
// - getApprovalRequest asserts the whole `approval_request`: `_app_name` string,
//   `_app_serial_id` integer, `_authy_id` numeric, `_id` string, `_user_email` an email,
//   `app_id` string, `created_at`/`updated_at` dates, `notified` boolean, `processed_at` null or
//   a date, `status` one of approved/denied/expired/pending, `user_id` and `uuid` strings.
// - Any status but 200, or a body without a truthy `success`, rejects with an `HttpError` whose
//   `code` is the HTTP status (500 for a 200 with `success` false) and whose `body` is Authy's.
// The error codes asserted are Authy's, not the library's (it checks none; sources:
// twilio/authy-ruby spec/authy/api_spec.rb, twilio/authy-php tests/Authy/ApiTest.php, Twilio's
// docs): 401 60001 for a bad key, 404 60026 for an unknown user, 404 60049 for an unknown
// approval request. An invalid phone never reaches Authy: the library refuses it with a
// ValidationFailedError.
//
// Prints one line per check (`ok <name>` / `FAIL <name>: <why>`) and exits 1 if any failed.
// The simulator's behaviour is chosen by the phone's last four digits (docs/simulator.md):
// 0100 approves, 0101 denies, 0102 expires.

import { createRequire } from 'node:module';
import path from 'node:path';

const [base, key, prefix] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(prefix), 'package.json'));
const { Client, errors } = require('authy-client');

const POLL_TIMEOUT_MS = 20000;
const failures = [];

function describe(e) {
  if (e && e.body !== undefined) {
    return `${e.name} ${e.code}: ${e.message} ${JSON.stringify(e.body)}`;
  }
  if (e && e.errors) {
    return `${e.name}: ${JSON.stringify(e.errors)}`;
  }
  return String(e && e.stack ? e.stack.split('\n').slice(0, 2).join(' ') : e);
}

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
    return true;
  } catch (e) {
    failures.push(name);
    console.log(`FAIL ${name}: ${describe(e)}`);
    return false;
  }
}

function assert(condition, why) {
  if (!condition) {
    throw new Error(why);
  }
}

async function expectHttpError(promise, code, errorCode) {
  let error;
  try {
    const body = await promise;
    error = new Error(`resolved instead of rejecting: ${JSON.stringify(body)}`);
  } catch (e) {
    assert(e instanceof errors.HttpError, `not an HttpError: ${describe(e)}`);
    assert(e.code === code, `HTTP ${e.code}, expected ${code}: ${describe(e)}`);
    assert(e.body && e.body.success === false, `body: ${describe(e)}`);
    assert(String(e.body.error_code) === errorCode, `error_code, expected ${errorCode}: ${describe(e)}`);
    return;
  }
  throw error;
}

const client = new Client({ key }, { host: base, timeout: 5000 });

// Dashes, periods, spaces and parentheses; country codes 1, 44 and 39 (ISO and calling codes).
const people = [
  ['approved', 'alice@example.com', '(425) 555-0100', 'US'],
  ['denied', 'bob@example.co.uk', '07911 120101', '44'],
  ['expired', 'carla@example.it', '312.555.0102', 'IT'],
];
const users = {};
for (const [outcome, email, phone, countryCode] of people) {
  await check(`registerUser ${countryCode} ${phone}`, async () => {
    const body = await client.registerUser({ countryCode, email, phone });
    users[outcome] = body.user.id;
  });
}

for (const [outcome] of people) {
  if (!(outcome in users)) {
    for (const name of [`createApprovalRequest (${outcome})`, `getApprovalRequest until ${outcome}`]) {
      failures.push(name);
      console.log(`FAIL ${name}: not run (registerUser failed)`);
    }
  }
}

const requests = {};
for (const [outcome, authyId] of Object.entries(users)) {
  await check(`createApprovalRequest details/hidden/logos/ttl (${outcome})`, async () => {
    const body = await client.createApprovalRequest(
      {
        authyId,
        details: {
          hidden: { ip: '203.0.113.7' },
          visible: { Email: 'alice@example.com', Location: 'Seattle, WA' },
        },
        logos: [{ res: 'default', url: 'https://example.com/logo.png' }],
        message: 'Sign in to Contoso',
      },
      { ttl: 120 },
    );
    requests[outcome] = body.approval_request.uuid;
  });
}

for (const outcome of Object.keys(users)) {
  if (!(outcome in requests)) {
    failures.push(`getApprovalRequest until ${outcome}`);
    console.log(`FAIL getApprovalRequest until ${outcome}: not run (createApprovalRequest failed)`);
  }
}

for (const [outcome, id] of Object.entries(requests)) {
  await check(`getApprovalRequest until ${outcome}`, async () => {
    const deadline = Date.now() + POLL_TIMEOUT_MS;
    for (;;) {
      const body = await client.getApprovalRequest({ id });
      const { status } = body.approval_request;
      assert(status === 'pending' || status === outcome, `status ${status}`);
      if (status === outcome) {
        return;
      }
      assert(Date.now() < deadline, `still pending after ${POLL_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });
}

await check('error: bad API key (401 60001)', () =>
  expectHttpError(
    new Client({ key: 'not-the-key' }, { host: base }).registerUser({
      countryCode: 'US',
      email: 'dan@example.com',
      phone: '425-555-0100',
    }),
    401,
    '60001',
  ));
await check('error: unknown authy id (404 60026)', () =>
  expectHttpError(
    client.createApprovalRequest({ authyId: 999999999, message: 'Sign in to Contoso' }),
    404,
    '60026',
  ));
await check('error: invalid phone (refused by the library)', async () => {
  try {
    await client.registerUser({ countryCode: 'US', email: 'erin@example.com', phone: '123' });
  } catch (e) {
    assert(e instanceof errors.ValidationFailedError, `not a ValidationFailedError: ${describe(e)}`);
    return;
  }
  throw new Error('an invalid phone was accepted');
});
await check('error: unknown approval request (404 60049)', () =>
  expectHttpError(
    client.getApprovalRequest({ id: '5e7b4f00-3a4c-0138-9f2c-0242ac110002' }),
    404,
    '60049',
  ));

console.log(failures.length ? `${failures.length} failed` : 'all passed');
process.exit(failures.length ? 1 : 0);
