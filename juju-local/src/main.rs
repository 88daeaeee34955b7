//! juju-local: a local stand-in for a Juju controller, unit agent and kubelet, to run podspec charms
//! (Juju 2.8-3.6) and sidecar charms (Juju 3.1-4.0, see `sidecar`) on one machine. One binary plays two
//! parts, busybox style: invoked as `juju-local` it is the CLI (`cli`); invoked through a symlink named
//! after a hook tool (`config-get`, `pod-spec-set`, …) it is that tool (`tools`), talking to the running
//! hook's context.

mod assumes;
mod charm_archive;
mod charm_meta;
mod cli;
mod context;
mod dns;
mod hook_runner;
mod k8s_rules;
mod kubelet;
mod lifecycle;
mod model;
mod netns;
mod pebble;
mod podspec;
mod probes;
mod shim;
mod sidecar;
mod status;
mod tools;
mod util;
mod workload;

fn main() {
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let argv0 = args.first().cloned().unwrap_or_default();
    let name = std::path::Path::new(&argv0).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if args.get(1).map(String::as_str) == Some(shim::NAME) {
        std::process::exit(shim::main(&args[2..]));
    }
    let code = if tools::is_tool(&name) { tools::main(&name, &args[1..]) } else { cli::main(args) };
    std::process::exit(code);
}
