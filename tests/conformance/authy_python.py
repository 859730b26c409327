"""Twilio's own Python client (PyPI `authy`, twilio/authy-python, pinned in .ci/run) against an
Authy API: the built-in simulator in tests/it/conformance.rs.

Usage: python authy_python.py BASE_URL API_KEY

Every check is what the library itself expects of Authy (twilio/authy-python,
authy/api/resources.py and tests/test_users.py, tests/test_one_touch.py):
- `Users.create` posts JSON `{"user": {"email", "cellphone", "country_code"},
  "send_install_link_via_sms"}`; `User.ok()` is "status 200", `User.errors()` is `{}` then, and
  `User.id` is `content["user"]["id"]`, which `OneTouch.send_request` requires to be an `int`
  ("Invalid authy id, user id is required and must be an integer value.").
- `OneTouch.send_request` posts JSON `{"message", "seconds_to_expire" (null when not given),
  "details", "hidden_details", "logos"}`; `OneTouchResponse.get_uuid()` is
  `content["approval_request"]["uuid"]`, `status()` is `content["success"]`.
- `OneTouch.get_approval_status` GETs `approval_requests/<uuid>`; the status is
  `content["approval_request"]["status"]`.
- On errors, `errors()` is the body's `errors` object. The codes asserted are Authy's, not
  the library's (it checks none; sources: twilio/authy-ruby spec/authy/api_spec.rb,
  twilio/authy-php tests/Authy/ApiTest.php, Twilio's docs): 401 60001 for a bad
  key, 404 60026 for an unknown user, 400 60027 with `errors.cellphone == "is invalid"` for an
  invalid phone, 404 60049 for an unknown approval request.

Prints one line per check (`ok <name>` / `FAIL <name>: <why>`) and exits 1 if any failed.
The simulator's behaviour is chosen by the phone's last four digits (docs/simulator.md):
0100 approves, 0101 denies, 0102 expires.
"""

import sys
import time

from authy.api import AuthyApiClient

BASE, KEY = sys.argv[1], sys.argv[2]
POLL_TIMEOUT_S = 20
failures = []


def check(name, fn):
    """Runs one check; an exception or a false assertion is a failure, reported on its line."""
    try:
        fn()
        print("ok " + name, flush=True)
        return True
    except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
        failures.append(name)
        print("FAIL {}: {}: {}".format(name, type(e).__name__, e), flush=True)
        return False


def describe(response):
    """Status and body of a library response object, for failure messages."""
    return "HTTP {} {!r}".format(response.response.status_code, response.content)


api = AuthyApiClient(KEY, BASE)
users = {}

# Users: dashes, periods, spaces and parentheses, as Twilio's Users docs allow; country codes
# 1, 44 and 39. The last four digits choose the simulator's answer.
PEOPLE = [
    ("approved", "alice@example.com", "(425) 555-0100", 1),
    ("denied", "bob@example.co.uk", "7911 120101", 44),
    ("expired", "carla@example.it", "312.555.0102", 39),
]

for outcome, email, phone, country_code in PEOPLE:

    def register(outcome=outcome, email=email, phone=phone, country_code=country_code):
        user = api.users.create(email, phone, country_code)
        assert user.ok(), describe(user)
        assert user.errors() == {}, user.errors()
        assert "user" in user.content, user.content
        assert user.id is not None, user.content
        users[outcome] = user.id

    check("users.create +{} {!r}".format(country_code, phone), register)


def not_run(name, why):
    """A check that could not run because an earlier one failed: a failure too."""
    failures.append(name)
    print("FAIL {}: not run ({})".format(name, why), flush=True)


for outcome, _, phone, _ in PEOPLE:
    if outcome not in users:
        not_run("one_touch.send_request ({})".format(outcome), "users.create failed")
        not_run("one_touch.get_approval_status until {}".format(outcome), "users.create failed")

requests_ = {}
for outcome, user_id in users.items():

    def push(outcome=outcome, user_id=user_id):
        response = api.one_touch.send_request(
            user_id,
            "Sign in to Contoso",
            seconds_to_expire=120,
            details={"Email": "alice@example.com", "Location": "Seattle, WA"},
            hidden_details={"ip": "203.0.113.7"},
            logos=[{"res": "default", "url": "https://example.com/logo.png"}],
        )
        assert response.ok(), describe(response)
        assert response.errors() == {}, response.errors()
        assert response.status() is True, response.content
        assert response.get_uuid(), response.content
        requests_[outcome] = response.get_uuid()

    check("one_touch.send_request details/hidden_details/logos ({})".format(outcome), push)

if "approved" in users:

    def minimal():
        # seconds_to_expire=None: the library sends `"seconds_to_expire": null`.
        response = api.one_touch.send_request(users["approved"], "Sign in to Contoso")
        assert response.ok(), describe(response)
        assert response.get_uuid(), response.content

    check("one_touch.send_request minimal (seconds_to_expire null)", minimal)

for outcome in users:
    if outcome not in requests_:
        not_run("one_touch.get_approval_status until {}".format(outcome), "send_request failed")

for outcome, uuid in requests_.items():

    def poll(outcome=outcome, uuid=uuid):
        deadline = time.monotonic() + POLL_TIMEOUT_S
        while True:
            response = api.one_touch.get_approval_status(uuid)
            assert response.ok(), describe(response)
            assert response.status() is True, response.content
            status = response.content["approval_request"]["status"]
            assert status in ("pending", outcome), "status {!r}".format(status)
            if status == outcome:
                return
            assert time.monotonic() < deadline, "still pending after {} s".format(POLL_TIMEOUT_S)
            time.sleep(0.25)

    check("one_touch.get_approval_status until {}".format(outcome), poll)


def expect_error(response, http_status, error_code):
    assert not response.ok(), describe(response)
    assert response.response.status_code == http_status, describe(response)
    assert response.content.get("success") is False, describe(response)
    assert str(response.content.get("error_code")) == error_code, describe(response)
    assert isinstance(response.errors(), dict) and response.errors(), describe(response)


def bad_key():
    wrong = AuthyApiClient("not-the-key", BASE)
    expect_error(wrong.users.create("dan@example.com", "425-555-0100", 1), 401, "60001")


def unknown_user():
    expect_error(api.one_touch.send_request(999999999, "Sign in to Contoso"), 404, "60026")


def invalid_phone():
    response = api.users.create("erin@example.com", "123", 1)
    expect_error(response, 400, "60027")
    assert response.errors().get("cellphone") == "is invalid", describe(response)


def unknown_request():
    response = api.one_touch.get_approval_status("5e7b4f00-3a4c-0138-9f2c-0242ac110002")
    expect_error(response, 404, "60049")


check("error: bad API key (401 60001)", bad_key)
check("error: unknown authy id (404 60026)", unknown_user)
check("error: invalid phone (400 60027)", invalid_phone)
check("error: unknown approval request (404 60049)", unknown_request)

print("{} failed".format(len(failures)) if failures else "all passed", flush=True)
sys.exit(1 if failures else 0)
