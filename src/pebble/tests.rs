//! The [`Pebble`] client over the [`FakePebble`]: typed calls, the call log, combine semantics, errors.

use std::time::Duration;

use super::fake::{FakePebble, Fault};
use super::*;

fn client() -> (Pebble, FakePebble) {
    let fake = FakePebble::new();
    (Pebble::new("redis", Box::new(fake.clone())), fake)
}

const BASE: &str = "summary: redis\nservices:\n  redis:\n    override: replace\n    command: redis-server /etc/redis.conf\n    startup: enabled\n    environment:\n      A: '1'\n    after: [init]\n";

#[test]
fn a_layer_replan_and_wait_are_counted_by_method_and_path() {
    let (mut pebble, fake) = client();
    pebble.add_layer("redis", BASE, true).unwrap();
    let id = pebble.replan().unwrap();
    let change = pebble.wait_change(&id, Duration::from_secs(5)).unwrap();
    assert_eq!((change.kind.as_str(), change.status.as_str()), ("replan", "Done"));
    assert_eq!(fake.service("redis").map(|s| (s.current, s.starts)), Some(("active".to_string(), 1)));
    let plan = pebble.plan_yaml().unwrap();
    assert!(plan.contains("redis-server /etc/redis.conf"), "{plan}");
    assert_eq!(
        pebble.calls(),
        ["POST /v1/layers", "POST /v1/services", &format!("GET /v1/changes/{id}/wait"), "GET /v1/plan"]
    );
    assert_eq!(fake.requests(), pebble.calls());
}

#[test]
fn combining_a_label_merges_or_replaces_services_as_pebble_does() {
    let (mut pebble, fake) = client();
    pebble.add_layer("redis", BASE, true).unwrap();
    let merge = "services:\n  redis:\n    override: merge\n    command: redis-server /etc/other.conf\n    environment:\n      B: '2'\n    after: [dns]\n";
    pebble.add_layer("redis", merge, true).unwrap();
    let plan = fake.plan();
    let svc = &plan["services"]["redis"];
    assert_eq!(svc["command"].as_str(), Some("redis-server /etc/other.conf"));
    assert_eq!(svc["startup"].as_str(), Some("enabled"), "merge keeps what the new layer does not say");
    assert_eq!(svc["environment"]["A"].as_str(), Some("1"));
    assert_eq!(svc["environment"]["B"].as_str(), Some("2"));
    let after: Vec<_> = svc["after"].as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(after, ["init", "dns"]);
    assert_eq!(fake.layers().len(), 1, "combined into the one layer with that label");

    let replace = "services:\n  redis:\n    override: replace\n    command: redis-server\n";
    pebble.add_layer("redis", replace, true).unwrap();
    let plan = fake.plan();
    assert_eq!(plan["services"]["redis"]["command"].as_str(), Some("redis-server"));
    assert!(plan["services"]["redis"].get("environment").is_none(), "replace drops the old definition");

    // A second label is a second layer, combined over the first in the plan.
    pebble.add_layer("extra", "services:\n  redis:\n    override: merge\n    startup: disabled\n", true).unwrap();
    assert_eq!(fake.layers().len(), 2);
    assert_eq!(fake.plan()["services"]["redis"]["startup"].as_str(), Some("disabled"));
}

#[test]
fn a_layer_without_override_or_an_existing_label_without_combine_is_a_400_on_one_line() {
    let (mut pebble, fake) = client();
    let err = pebble.add_layer("redis", "services:\n  redis:\n    command: x\n", true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pebble (redis): POST /v1/layers: 400 Bad Request: layer \"redis\" must define \"override\" for service \"redis\""
    );
    assert!(matches!(err, PebbleError::Api { status_code: 400, .. }));
    pebble.add_layer("redis", BASE, false).unwrap();
    let err = pebble.add_layer("redis", BASE, false).unwrap_err();
    assert!(err.to_string().ends_with("layer \"redis\" already exists"), "{err}");
    assert_eq!(fake.layers().len(), 1);
}

#[test]
fn replan_restarts_only_a_changed_service_and_restart_always_does() {
    let (mut pebble, fake) = client();
    pebble.add_layer("redis", BASE, true).unwrap();
    pebble.replan().unwrap();
    pebble.replan().unwrap();
    assert_eq!(fake.service("redis").unwrap().starts, 1, "nothing changed");
    pebble.add_layer("redis", "services:\n  redis:\n    override: merge\n    command: y\n", true).unwrap();
    pebble.replan().unwrap();
    assert_eq!(fake.service("redis").unwrap().starts, 2);
    let id = pebble.restart(&["redis"]).unwrap();
    pebble.wait_change(&id, Duration::from_secs(1)).unwrap();
    assert_eq!(fake.service("redis").unwrap().starts, 3);
    let err = pebble.restart(&["nope"]).unwrap_err();
    assert!(err.to_string().contains("service \"nope\" does not exist"), "{err}");
}

#[test]
fn a_change_that_failed_is_an_error_with_pebbles_message() {
    let (mut pebble, fake) = client();
    pebble.add_layer("redis", BASE, true).unwrap();
    fake.fail("/v1/services", Fault::ChangeError("cannot start service: exited quickly with code 1".into()));
    let id = pebble.replan().unwrap();
    let err = pebble.wait_change(&id, Duration::from_secs(5)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pebble (redis): GET /v1/changes/{id}/wait: change {id} failed: cannot start service: exited quickly with code 1"
        )
    );
    assert!(matches!(err, PebbleError::ChangeFailed { .. }));
    let err = pebble.wait_change("99", Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, PebbleError::Api { status_code: 404, .. }), "{err}");
}

#[test]
fn a_pushed_file_is_stored_with_its_permissions_and_never_logged() {
    let (mut pebble, fake) = client();
    let secret = b"requirepass s3cr3t-pa55";
    pebble.push_file("/etc/redis/secret.conf", secret, "600", true).unwrap();
    let file = fake.file("/etc/redis/secret.conf").unwrap();
    assert_eq!((file.content.as_slice(), file.permissions.as_str()), (&secret[..], "600"));
    assert!(!format!("{file:?}").contains("s3cr3t"));

    // Without make-dirs, a missing parent is Pebble's per-file error, which names the path only.
    let err = pebble.push_file("/nowhere/secret.conf", secret, "600", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pebble (redis): POST /v1/files: cannot write /nowhere/secret.conf: open /nowhere/secret.conf: no such \
         file or directory (not-found)"
    );
    let err = pebble.push_file("/etc/redis/x", secret, "9z", false).unwrap_err();
    assert!(matches!(err, PebbleError::FileRejected { .. }), "{err}");
    for text in pebble.calls().iter().cloned().chain([err.to_string(), format!("{err:?}")]) {
        assert!(!text.contains("s3cr3t"), "{text}");
    }
    assert_eq!(pebble.calls(), ["POST /v1/files"; 3]);
}

#[test]
fn checks_report_name_status_and_failures() {
    let (mut pebble, fake) = client();
    let layer = "checks:\n  alive:\n    override: replace\n    exec:\n      command: redis-cli ping\n";
    pebble.add_layer("redis", layer, true).unwrap();
    fake.set_check("ready", "down", 4);
    let checks = pebble.checks().unwrap();
    assert_eq!(
        checks,
        [
            Check { name: "alive".into(), status: "up".into(), failures: 0 },
            Check { name: "ready".into(), status: "down".into(), failures: 4 },
        ]
    );
}

#[test]
fn faults_become_typed_errors_and_every_attempt_is_counted() {
    let (mut pebble, fake) = client();
    fake.set_running(false);
    let err = pebble.plan_yaml().unwrap_err();
    assert!(err.is_not_running(), "{err}");
    assert!(err.to_string().starts_with("pebble (redis): GET /v1/plan: not running"), "{err}");
    fake.set_running(true);
    fake.fail("/v1/checks", Fault::Timeout);
    let mut pebble = pebble.with_timeout(Duration::from_millis(250));
    let err = pebble.checks().unwrap_err();
    assert_eq!(err.to_string(), "pebble (redis): GET /v1/checks: no answer within 250ms");
    fake.clear_faults();
    fake.fail("/v1/layers", Fault::Reply { status_code: 500, message: "cannot\nwrite state".into() });
    let err = pebble.add_layer("redis", BASE, true).unwrap_err();
    assert_eq!(err.to_string(), "pebble (redis): POST /v1/layers: 500 Internal Server Error: cannot write state");
    assert_eq!(pebble.calls().len(), 3, "with_timeout keeps the log");
    assert_eq!(fake.requests().len(), 3);
}

/// A transport that answers every call with one canned response.
struct Canned(Response);

impl Transport for Canned {
    fn request(&mut self, _: &str, _: &str, _: Option<Body>, _: Duration) -> Result<Response, TransportError> {
        Ok(self.0.clone())
    }
}

#[test]
fn a_body_that_is_not_an_envelope_is_a_protocol_error_that_does_not_quote_it() {
    let body = b"<html>password=hunter2</html>".to_vec();
    let mut pebble = Pebble::new("redis", Box::new(Canned(Response { status: 502, body })));
    let err = pebble.plan_yaml().unwrap_err();
    assert_eq!(err.to_string(), "pebble (redis): GET /v1/plan: bad response: HTTP 502: not a JSON envelope (29 bytes)");
    let sync = br#"{"type":"sync","status-code":200,"status":"OK","result":null}"#.to_vec();
    let mut pebble = Pebble::new("redis", Box::new(Canned(Response { status: 200, body: sync })));
    assert!(matches!(pebble.replan(), Err(PebbleError::Protocol { .. })), "replan needs an async change id");
}

#[test]
fn a_request_body_debugs_as_its_length_only() {
    let body = http::push_body("/p", b"s3cr3t", "600", false);
    assert!(!format!("{body:?}").contains("s3cr3t"));
    assert!(format!("{:?}", Response { status: 200, body: b"s3cr3t".to_vec() }).ends_with("6 bytes)"));
}

#[test]
fn a_path_that_would_break_the_request_is_refused_before_it_is_sent() {
    let (mut pebble, fake) = client();
    let err = pebble.wait_change("1 HTTP/1.1\r\nX-Evil: 1", Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, PebbleError::Invalid { .. }), "{err}");
    let err = pebble.push_file("/etc/x\r\nContent-Type: text/plain", b"s3cr3t", "600", true).unwrap_err();
    assert_eq!(err.to_string(), "pebble (redis): POST /v1/files: not sent: a file path with a control character");
    assert!(pebble.calls().is_empty() && fake.requests().is_empty(), "nothing was sent");
}
