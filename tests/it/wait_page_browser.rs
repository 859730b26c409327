//! The wait page's optional script (`policies/templates/authy-wait.html`) in a real browser:
//! headless Chromium (Debian's `chromium`) loads the template as B2C would serve it, with
//! markup that reproduces B2C's self-asserted page contract, and a small page-side script
//! plays B2C's part.
//!
//! B2C's part, as the template relies on it (MS docs "customize-ui-with-html": B2C renders the
//! page into the element `id="api"`; "javascript-and-page-layout"; the pack's self-asserted
//! page, `selfasserted` page contract): some time after the template loaded, `#api` is filled with
//! the heading, the intro, the form with a page-level error element (`.error.pageLevel`,
//! `aria-hidden="true"`, hidden) above the paragraph, and the Continue button (`#continue`,
//! labelled with the page's `button_continue` in its language). Each click of Continue hides
//! the page-level error while the validation technical profiles run, then either shows the
//! REST profile's `userMessage` in `.error.pageLevel` (`aria-hidden="false"`, displayed), or,
//! after an approval, moves on to the next page (the harness notes it and counts any later
//! click).
//!
//! Every scenario runs in every language of the API (`Language::ALL`), with the API's own
//! `userMessage`s in that language (what `ApiError::user_message_in` renders, the handler's
//! answer) and the policy's own localized messages (the wait page's `UserMessageIfRequestTimeout`
//! and `DefaultUserMessageIfRequestFailed`, from the rendered policy): Continue must be clicked
//! once when the page is shown and again after each pending answer, and never after an
//! approval (the page moved on) nor after a denial, a limit, a pause, an expired request or an
//! error. Then the same scenarios run against three mutants of the template: one that continues
//! after any message (it clicks after a denial), one that also continues on a timer (it clicks
//! after the approval) and the old one that compared English text (it stops after the first
//! pending answer in any other language).
//!
//! Each scenario is an `<iframe>` of one top page, loaded from `file://` in one Chromium
//! process: `--headless --dump-dom` with `--virtual-time-budget`, so the script's pauses
//! (1 s before each Continue) cost no real time. Each frame reports its clicks with
//! `postMessage`; the top page writes them into the DOM that Chromium dumps. No DevTools
//! protocol client and no new crate are needed.
//!
//! Chromium is found as `$B2C_AUTHY_CHROMIUM`, else `chromium` on the `PATH` (`.ci/run`
//! installs Debian's package); without it the test is skipped with a message, except under
//! `CI=true`, where it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use b2c_authy::error::ApiError;
use b2c_authy::messages::Language;
use b2c_authy::push_limits::SignInCode;
use serde_json::{json, Value};

use crate::policy_contract::{localized_strings, parse, sample};
use crate::support::{repo_root, skip_or_fail};

/// The wait page's localized resources in the rendered policy, per language tag.
const WAIT_RESOURCES: &str = "api.selfasserted.authywait";
/// Virtual time Chromium gives the page (ms): far more than the longest scenario needs (about
/// 1 s before each Continue and 0.3 s for each answer), so every frame reports.
const VIRTUAL_TIME_BUDGET_MS: u64 = 120_000;
/// How long one Chromium run may take in real time before the test gives up.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

/// One answer B2C gives to a Continue.
#[derive(Clone, Debug)]
enum Answer {
    /// A REST profile's 4xx: its `userMessage` shown in `.error.pageLevel`; `pending` when it is
    /// an `ApprovalPending` answer (the API's, or the policy's timeout message).
    Message { text: String, pending: bool },
    /// WaitForAuthyApproval answered approved: B2C leaves the page.
    Approved,
}

/// One scenario: a page in one language, answered in order.
#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    /// The Continue button's label in the page's language.
    label: String,
    answers: Vec<Answer>,
}

impl Scenario {
    /// The clicks a correct script makes: one when the page is shown, one after each pending
    /// answer up to the first answer that is not pending (then the user decides).
    fn expected_clicks(&self) -> u64 {
        1 + self
            .answers
            .iter()
            .take_while(|a| matches!(a, Answer::Message { pending: true, .. }))
            .count() as u64
    }

    fn to_json(&self) -> Value {
        json!({
            "label": self.label,
            "answers": self.answers.iter().map(|a| match a {
                Answer::Message { text, .. } => json!({ "message": text }),
                Answer::Approved => json!({ "approved": true }),
            }).collect::<Vec<_>>(),
        })
    }
}

/// What one frame reports.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Clicks of Continue the template's script made.
    clicks: u64,
    /// Of those, clicks after the page moved on (an approval).
    clicks_after_moving_on: u64,
}

/// The page-side part of B2C, put at the end of the template's `<body>`: fills `#api` as B2C
/// does, answers each click of Continue with the next answer of `CASE`, and reports to the top
/// page. `/*CASE*/` is replaced with the scenario's JSON and `/*ID*/` with its index.
const B2C_HARNESS: &str = r#"
<script>
(function () {
  "use strict";
  var CASE = /*CASE*/;
  var ID = /*ID*/;
  var clicks = 0, clicksAfterMovingOn = 0, next = 0, movedOn = false;
  function report() {
    parent.postMessage({ id: ID, clicks: clicks, clicksAfterMovingOn: clicksAfterMovingOn }, "*");
  }
  // B2C fills #api after its own script has loaded, after the template's script started.
  window.setTimeout(function () {
    var api = document.getElementById("api");
    api.setAttribute("data-name", "SelfAsserted");
    api.innerHTML =
      '<div class="heading"><h1 role="heading"></h1></div>' +
      '<div class="intro"><p></p></div>' +
      '<form id="attributeVerification" onsubmit="return false;">' +
      '<div class="error pageLevel" aria-hidden="true" role="alert" style="display: none;"></div>' +
      '<div class="attr" id="attributeList"><ul><li class="Paragraph"><div class="attrEntry">' +
      '<div id="authyWaitMessage" class="textInParagraph"></div></div></li></ul></div>' +
      '<div class="buttons"><button id="continue" type="submit" form="attributeVerification"></button>' +
      '<button id="cancel" type="button"></button></div></form>';
    var button = document.getElementById("continue");
    button.textContent = CASE.label;
    button.setAttribute("aria-label", CASE.label);
    var error = api.querySelector(".error.pageLevel");
    button.addEventListener("click", function () {
      clicks += 1;
      if (movedOn) {
        clicksAfterMovingOn += 1;
        return;
      }
      // The page-level error is hidden while the validation technical profiles run.
      error.style.display = "none";
      error.setAttribute("aria-hidden", "true");
      var answer = CASE.answers[next++];
      window.setTimeout(function () {
        if (!answer) {
          return;
        }
        if (answer.approved) {
          movedOn = true;
          return;
        }
        error.textContent = answer.message;
        error.style.display = "block";
        error.setAttribute("aria-hidden", "false");
      }, 300);
    });
  }, 500);
  // Long after the last answer (each Continue follows its answer by about a second).
  window.setTimeout(report, 1500 * (CASE.answers.length + 4));
})();
</script>
</body>"#;

/// The top page: one frame per scenario; when every frame has reported, their outcomes as JSON
/// in `<pre id="outcomes">`.
const TOP_PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>wait page scenarios</title></head>
<body>
<pre id="outcomes"></pre>
<script>
  var expected = /*COUNT*/, outcomes = {};
  window.addEventListener("message", function (event) {
    outcomes[event.data.id] = event.data;
    if (Object.keys(outcomes).length === expected) {
      document.getElementById("outcomes").textContent = JSON.stringify(outcomes);
    }
  });
</script>
/*FRAMES*/
</body></html>
"#;

/// Chromium's path: `$B2C_AUTHY_CHROMIUM`, else `chromium` on the `PATH`; `None` (after
/// [`skip_or_fail`]) when there is none.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("B2C_AUTHY_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        skip_or_fail(
            "chromium is not installed (Debian package `chromium`; or set B2C_AUTHY_CHROMIUM)",
        );
    }
    found
}

/// Runs every scenario against `template` in one Chromium, returns each one's outcome in order.
fn run(chromium: &Path, template: &str, scenarios: &[Scenario], label: &str) -> Vec<Outcome> {
    let dir = std::env::temp_dir().join(format!(
        "b2c-authy-wait-page-browser-{label}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(
        template.matches("</body>").count(),
        1,
        "authy-wait.html must end its body once"
    );
    let mut frames = String::new();
    for (id, scenario) in scenarios.iter().enumerate() {
        // The scenario's JSON goes into a <script>: no "</" may close it early.
        let case = scenario.to_json().to_string().replace("</", "<\\/");
        let harness = B2C_HARNESS
            .replace("/*CASE*/", &case)
            .replace("/*ID*/", &id.to_string());
        let page = template.replace("</body>", &harness);
        std::fs::write(dir.join(format!("case-{id}.html")), page).unwrap();
        frames.push_str(&format!("<iframe src=\"case-{id}.html\"></iframe>\n"));
    }
    let top = TOP_PAGE
        .replace("/*COUNT*/", &scenarios.len().to_string())
        .replace("/*FRAMES*/", &frames);
    let index = dir.join("index.html");
    std::fs::write(&index, top).unwrap();
    let started = Instant::now();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox", // root in CI; the page is our own
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            &format!("--user-data-dir={}", dir.join("profile").display()),
            &format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"),
            "--dump-dom",
        ])
        .arg(format!("file://{}", index.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", chromium.display()));
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            panic!("chromium did not finish within {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    eprintln!(
        "chromium ran {} scenarios ({label}) in {:?}",
        scenarios.len(),
        started.elapsed()
    );
    let dom = String::from_utf8_lossy(&output.stdout);
    let outcomes = dom
        .split_once("<pre id=\"outcomes\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(json, _)| json.replace("&quot;", "\"").replace("&amp;", "&"))
        .unwrap_or_default();
    let outcomes: BTreeMap<String, Value> = serde_json::from_str(&outcomes).unwrap_or_else(|e| {
        panic!(
            "no outcomes from every frame ({e}); status {}, stderr:\n{}\nDOM:\n{dom}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let _ = std::fs::remove_dir_all(&dir);
    (0..scenarios.len())
        .map(|id| {
            let outcome = &outcomes[&id.to_string()];
            Outcome {
                clicks: outcome["clicks"].as_u64().unwrap(),
                clicks_after_moving_on: outcome["clicksAfterMovingOn"].as_u64().unwrap(),
            }
        })
        .collect()
}

/// Every scenario in every language: the API's messages, and the wait page's own from the
/// rendered policy.
fn scenarios() -> Vec<Scenario> {
    let files = sample();
    let docs = parse(&files);
    let mut scenarios = Vec::new();
    for language in Language::ALL {
        let tag = language.tag();
        let strings = localized_strings(&docs, &format!("{WAIT_RESOURCES}.{tag}"))
            .unwrap_or_else(|| panic!("no {WAIT_RESOURCES}.{tag} in the rendered policy"));
        let string = |kind: &str, id: &str| -> String {
            strings
                .get(&(kind.to_owned(), String::new(), id.to_owned()))
                .unwrap_or_else(|| panic!("{WAIT_RESOURCES}.{tag} has no {kind} {id}"))
                .clone()
        };
        let label = string("UxElement", "button_continue");
        let api = |error: ApiError| error.user_message_in(language).into_owned();
        let pending = |code: &str| Answer::Message {
            text: api(ApiError::ApprovalPending {
                sign_in_code: SignInCode::parse(code),
            }),
            pending: true,
        };
        let stop = |text: String| Answer::Message {
            text,
            pending: false,
        };
        let minutes = Duration::from_secs(900);
        let timeout = Answer::Message {
            text: string("ErrorMessage", "UserMessageIfRequestTimeout"),
            pending: true,
        };
        let mut add = |name: &str, answers: Vec<Answer>| {
            scenarios.push(Scenario {
                name: format!("{tag}: {name}"),
                label: label.clone(),
                answers,
            })
        };
        // Approved after pending answers (a timed-out wait among them): the page moves on.
        add(
            "approved",
            vec![
                pending("47"),
                pending("47"),
                timeout.clone(),
                pending("47"),
                Answer::Approved,
                pending("47"),
            ],
        );
        // Any other answer after pending ones: the user decides, even if the page would answer
        // pending again (a new push after an expired request, say).
        for (name, text) in [
            (
                "denied, pushes paused",
                api(ApiError::ApprovalDenied {
                    pause: Some(minutes),
                }),
            ),
            ("denied", api(ApiError::ApprovalDenied { pause: None })),
            (
                "push limit reached",
                api(ApiError::PushLimitReached {
                    retry_after: minutes,
                }),
            ),
            (
                "pushes paused",
                api(ApiError::PushesPaused {
                    retry_after: minutes,
                }),
            ),
            ("expired", api(ApiError::ApprovalExpired)),
            (
                "REST call failed (the policy's message)",
                string("ErrorMessage", "DefaultUserMessageIfRequestFailed"),
            ),
        ] {
            add(
                name,
                vec![pending("07"), pending("07"), stop(text), pending("07")],
            );
        }
        // Refused at the first Continue: no automatic Continue at all after it.
        add(
            "push limit reached at once",
            vec![stop(api(ApiError::PushLimitReached {
                retry_after: minutes,
            }))],
        );
    }
    scenarios
}

/// The scenarios whose outcome differs from what a correct script does, described.
fn wrong(scenarios: &[Scenario], outcomes: &[Outcome]) -> Vec<String> {
    scenarios
        .iter()
        .zip(outcomes)
        .filter_map(|(scenario, outcome)| {
            let expected = Outcome {
                clicks: scenario.expected_clicks(),
                clicks_after_moving_on: 0,
            };
            (*outcome != expected)
                .then(|| format!("{}: {outcome:?}, expected {expected:?}", scenario.name))
        })
        .collect()
}

#[test]
fn the_wait_page_script_continues_after_pending_answers_only_in_every_language() {
    let Some(chromium) = chromium() else {
        return;
    };
    let template =
        std::fs::read_to_string(repo_root().join("policies/templates/authy-wait.html")).unwrap();
    let scenarios = scenarios();
    assert_eq!(scenarios.len(), 8 * Language::ALL.len());
    let outcomes = run(&chromium, &template, &scenarios, "template");
    assert_eq!(wrong(&scenarios, &outcomes), Vec::<String>::new());

    // Mutant: a script that continues after any message shown. It clicks after the denial, the
    // limit, the pause, the expired request and the error, in every language.
    let any_message = template.replace(
        "isShown(errors[i]) && isPendingMessage(errors[i].textContent)",
        "isShown(errors[i])",
    );
    assert_ne!(
        any_message, template,
        "the mutation must change the template"
    );
    let outcomes = run(&chromium, &any_message, &scenarios, "any-message");
    let failures = wrong(&scenarios, &outcomes);
    for scenario in &scenarios {
        let approved = scenario.name.ends_with(": approved");
        assert_eq!(
            failures
                .iter()
                .any(|f| f.starts_with(&format!("{}: ", scenario.name))),
            !approved,
            "{}: {failures:#?}",
            scenario.name
        );
    }

    // Mutant: a script that also selects Continue on a timer, whatever the page shows. It
    // clicks after the approval, when B2C has moved on (and after every other answer).
    let timer = template.replace(
        "awaitingAnswer = true;\n        button.click();",
        "awaitingAnswer = true;\n        button.click();\n        window.setTimeout(selectContinue, PAUSE_MS * 3);",
    );
    assert_ne!(timer, template, "the mutation must change the template");
    let outcomes = run(&chromium, &timer, &scenarios, "timer");
    for (scenario, outcome) in scenarios.iter().zip(&outcomes) {
        if scenario.name.ends_with(": approved") {
            assert!(
                outcome.clicks_after_moving_on > 0,
                "{}: {outcome:?}",
                scenario.name
            );
        } else {
            assert!(
                outcome.clicks > scenario.expected_clicks(),
                "{}: {outcome:?}",
                scenario.name
            );
        }
    }

    // Mutant: the old matcher, which compared the English text. In the other languages it does
    // not see the pending answers, so the page waits for the user after the first one.
    let english = template.replace(
        "return message.length > PENDING_MARKER.length",
        "return /then select Continue\\.$/.test(message) || message.length > PENDING_MARKER.length && false",
    );
    assert_ne!(english, template, "the mutation must change the template");
    let approved: Vec<Scenario> = scenarios
        .iter()
        .filter(|s| s.name.ends_with(": approved"))
        .cloned()
        .collect();
    let outcomes = run(&chromium, &english, &approved, "english");
    let failures = wrong(&approved, &outcomes);
    for scenario in &approved {
        let is_english = scenario.name.starts_with("en: ");
        assert_eq!(
            failures
                .iter()
                .any(|f| f.starts_with(&format!("{}: ", scenario.name))),
            !is_english,
            "{}: {failures:#?}",
            scenario.name
        );
    }
}
