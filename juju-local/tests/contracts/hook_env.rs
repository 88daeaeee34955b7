//! The hook environment and the tool contracts as a charm sees them from inside a hook: variables
//! built from scratch (no HOME/USER), argv0/cwd/stdin, exit codes 0/1/2 with `ERROR` lines, gnuflag
//! forms, output formats, and resource-get's missing trailing newline.

use crate::common::*;

/// Shell run in install: each probe writes `<name>=<exit code>:<stdout>|<stderr>` lines to probes.txt.
const PROBES: &str = r#"
P="$STATE/probes.txt"; : > "$P"
probe() { n="$1"; shift; out=$("$@" 2>"$STATE/err") && rc=0 || rc=$?; echo "$n=$rc:$out|$(cat "$STATE/err")" >> "$P"; }
probe home sh -c 'echo "${HOME-unset}/${USER-unset}"'
probe argv0 sh -c "echo $0"
probe cwd pwd
probe stdin sh -c 'cat; echo end'
probe version sh -c 'echo $JUJU_VERSION $JUJU_HOOK_NAME $JUJU_DISPATCH_PATH $LANG'
probe cfg config-get port
probe cfgjson config-get --format=json
probe cfgall config-get port --all
probe cfgextra config-get port extra
probe leader is-leader
probe leaderjson is-leader --format json
probe badformat is-leader --format xml
probe badflag is-leader --bogus
probe positional is-leader extra
probe statusbad status-set bogus
probe statusnone status-set
probe statusok status-set maintenance -- "-dash message"
probe statusget status-get --include-data --format json
probe relget relation-get
probe relset relation-set a=b
probe relids relation-ids db --format json
probe relbad relation-get -r nope
probe relmissing relation-get -r 99
probe lset leader-set k=v
probe lget leader-get k
probe sset state-set a=1 b=2
probe sget state-get a
probe sstrict state-get missing --strict
probe sdup state-set a=1 a=2
probe sbad state-set novalue
probe net network-get db --ingress-address
probe netbad network-get nope
probe act action-get
probe log juju-log -l WARNING -- hello from install
probe specempty sh -c 'echo "" | pod-spec-set'
probe specargs pod-spec-set extra
probe port open-port 6379/tcp
probe nocontext env -u JUJU_CONTEXT_ID config-get
probe badcontext env JUJU_CONTEXT_ID=x config-get
resource-get redis-image > "$STATE/resource-path"
"#;

fn probes(m: &TestModel) -> std::collections::BTreeMap<String, String> {
    let text = m.state_file("testredis", 0, "probes.txt").expect("probes ran");
    let mut map = std::collections::BTreeMap::new();
    let mut last = String::new();
    for line in text.lines() {
        match line.split_once('=') {
            Some((k, v))
                if !k.contains(' ')
                    && !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
            {
                last = k.to_string();
                map.insert(k.to_string(), v.to_string());
            }
            _ => {
                if let Some(v) = map.get_mut(&last) {
                    v.push('\n');
                    v.push_str(line);
                }
            }
        }
    }
    map
}

#[test]
fn hook_environment_and_tool_contracts() {
    let m = TestModel::new("hookenv");
    let charm = build_charm(&m.work, &CharmOpts { install_extra: PROBES.into(), ..Default::default() });
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    let p = probes(&m);
    let charm_dir = m.dir.join("agents/unit-testredis-0/charm");
    let get = |k: &str| p.get(k).cloned().unwrap_or_else(|| panic!("probe {k} missing: {p:?}"));
    assert_eq!(get("home"), "0:unset/unset|");
    assert_eq!(get("argv0"), format!("0:{}|", charm_dir.join("dispatch").display()));
    assert_eq!(get("cwd"), format!("0:{}|", charm_dir.display()));
    assert_eq!(get("stdin"), "0:end|");
    assert_eq!(get("version"), "0:2.9.31 install hooks/install C.UTF-8|");
    assert_eq!(get("cfg"), "0:6379|");
    assert_eq!(get("cfgjson"), "0:{\"port\":6379}|");
    assert_eq!(get("cfgall"), "2:|ERROR cannot use argument --all together with key \"port\"");
    assert_eq!(get("cfgextra"), "2:|ERROR unrecognized args: [\"extra\"]");
    assert_eq!(get("leader"), "0:True|");
    assert_eq!(get("leaderjson"), "0:true|");
    assert_eq!(get("badformat"), "2:|ERROR invalid value \"xml\" for flag --format: unknown format \"xml\"");
    assert_eq!(get("badflag"), "2:|ERROR flag provided but not defined: --bogus");
    assert_eq!(get("positional"), "2:|ERROR unrecognized args: [\"extra\"]");
    assert_eq!(
        get("statusbad"),
        "2:|ERROR invalid status \"bogus\", expected one of [maintenance blocked waiting active]"
    );
    assert_eq!(get("statusnone"), "2:|ERROR invalid args, require <status> [message]");
    assert_eq!(get("statusok"), "0:|");
    assert_eq!(get("statusget"), "0:{\"message\":\"-dash message\",\"status\":\"maintenance\",\"status-data\":{}}|");
    assert_eq!(get("relget"), "2:|ERROR no relation id specified");
    assert_eq!(get("relset"), "2:|ERROR no relation id specified");
    assert_eq!(get("relids"), "0:[]|");
    assert_eq!(get("relbad"), "2:|ERROR invalid value \"nope\" for flag -r: invalid relation id");
    assert_eq!(get("relmissing"), "2:|ERROR invalid value \"99\" for flag -r: relation not found");
    assert_eq!(get("lset"), "0:|");
    assert_eq!(get("lget"), "0:v|");
    assert_eq!(get("sset"), "0:|");
    assert_eq!(get("sget"), "0:1|", "state-get sees this hook's pending state");
    assert_eq!(get("sstrict"), "1:|ERROR \"missing\" not found");
    assert_eq!(get("sdup"), "2:|ERROR key \"a\" specified more than once");
    assert_eq!(get("sbad"), "2:|ERROR expected \"key=value\", got \"novalue\"");
    assert_eq!(get("net"), format!("0:{}|", m.address("testredis/0")));
    assert_eq!(get("netbad"), "1:|ERROR no network config found for binding \"nope\"");
    assert_eq!(get("act"), "1:|ERROR not running an action");
    assert_eq!(get("log"), "0:|");
    assert_eq!(
        get("specempty"),
        "1:|ERROR no k8s spec specified: pipe k8s spec to command, or specify a file with --file"
    );
    assert_eq!(get("specargs"), "2:|ERROR unrecognized args: [\"extra\"]");
    assert_eq!(get("port"), "0:|");
    assert_eq!(get("nocontext"), "1:|ERROR JUJU_CONTEXT_ID not set");
    assert!(
        get("badcontext").starts_with("1:|ERROR bad request: expected context id \"testredis/0-install-"),
        "{}",
        get("badcontext")
    );
    // resource-get prints the path with no trailing newline, at the 2.9.31+ location.
    let path = m.state_file("testredis", 0, "resource-path").unwrap();
    assert_eq!(path, m.dir.join("agents/unit-testredis-0/resources/content.yaml").display().to_string());
    // open-port fails the install hook at commit (CAAS units have no machine).
    let st = m.status();
    assert_eq!(TestModel::unit(&st, "testredis/0")["juju-status"]["message"], "hook failed: \"install\"");
    assert!(m.debug_log().contains("unit \"testredis/0\" is not assigned to a machine"));
    assert!(m.debug_log().contains("WARNING unit.testredis/0.juju-log hello from install"));
    // leader-set is immediate: it survived the failed hook; state-set did not.
    assert_eq!(m.model_json()["apps"]["testredis"]["leader_settings"]["k"], "v");
    assert!(m.model_json()["apps"]["testredis"]["units"]["0"]["state"].as_object().is_some_and(|s| s.is_empty()));
}
