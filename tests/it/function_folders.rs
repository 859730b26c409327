//! The Functions host stops forwarding a request to a custom handler as soon as a function
//! has any binding besides one `httpTrigger` in and one `http` out (MS docs
//! "functions-custom-handlers", HTTP-only function). These tests pin that shape for every
//! function folder and the settings of host.json the handler relies on.

use b2c_authy::functions::FUNCTION_NAMES;
use serde_json::Value;

fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_function_folder_has_exactly_one_http_trigger_and_one_http_output() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut folders: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("function.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let mut expected: Vec<String> = FUNCTION_NAMES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(folders, expected, "one folder per function, no more");
    for name in FUNCTION_NAMES {
        let function = read_json(&format!("{root}/{name}/function.json"));
        let bindings = function["bindings"].as_array().expect("bindings");
        assert_eq!(bindings.len(), 2, "{name}: exactly two bindings");
        let trigger = &bindings[0];
        assert_eq!(trigger["type"], "httpTrigger", "{name}");
        assert_eq!(trigger["direction"], "in", "{name}");
        assert_eq!(trigger["authLevel"], "function", "{name}");
        assert_eq!(trigger["methods"], serde_json::json!(["post"]), "{name}");
        assert_eq!(trigger["route"], name, "{name}: route = function name");
        let output = &bindings[1];
        assert_eq!(output["type"], "http", "{name}");
        assert_eq!(output["direction"], "out", "{name}");
    }
}

#[test]
fn host_json_forwards_http_requests_to_the_handler_binary() {
    let host = read_json(concat!(env!("CARGO_MANIFEST_DIR"), "/host.json"));
    assert_eq!(host["version"], "2.0");
    let custom = &host["customHandler"];
    assert_eq!(custom["enableForwardingHttpRequest"], true);
    assert_eq!(custom["description"]["defaultExecutablePath"], "handler");
    assert_eq!(
        custom["description"]["useStdErrorStreamForErrorsOnly"],
        true
    );
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    assert_eq!(host["extensionBundle"]["version"], "[4.*, 5.0.0)");
    // functionTimeout (at least a minute) must exceed the largest accepted wait budget.
    let timeout = host["functionTimeout"].as_str().expect("functionTimeout");
    let parts: Vec<u64> = timeout.split(':').map(|p| p.parse().unwrap()).collect();
    let seconds = parts[0] * 3600 + parts[1] * 60 + parts[2];
    assert!(
        seconds > b2c_authy::config::MAX_APPROVAL_WAIT_SECONDS,
        "{timeout}"
    );
}

#[test]
fn local_settings_example_shows_every_setting() {
    let example = read_json(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/local.settings.json.example"
    ));
    let values = &example["Values"];
    assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "custom");
    // The host sets these two itself, and the identity-based forms of AzureWebJobsStorage
    // are for Azure (an empty one would still be read by the host); every other setting is
    // shown.
    let shown = b2c_authy::config::SETTING_NAMES.iter().filter(|n| {
        !matches!(**n, "FUNCTIONS_CUSTOMHANDLER_PORT" | "WEBSITE_INSTANCE_ID")
            && !n.starts_with("AzureWebJobsStorage__")
    });
    for name in shown {
        assert!(
            values.get(name).is_some(),
            "{name} missing from local.settings.json.example"
        );
    }
}
