"""Rewrites a scratch copy of src/main.rs without clap, for benches/size.sh's `no-clap` variant.

The derive-generated parser is replaced by a hand-written one with the same three flags
(--list-hooks, -h/--help, -V/--version) and clap's exit codes (0 for help/version, 2 for a usage
error). Only ever run on the copy in target/size/, never on the repo.
"""
import re
import sys

path = sys.argv[1]
src = open(path).read()
src = src.replace('use clap::Parser;\n', '')
derive = re.compile(r'#\[derive\(Parser\)\]\n#\[command\((?P<attrs>.*?)\)\]\nstruct Cli \{.*?\n\}\n', re.S)
m = derive.search(src)
if not m:
    sys.exit('size-no-clap: the Cli struct was not found; update this script')
long_about = re.search(r'long_about = (".*?")\n\)', m.group(0) + ')', re.S)
about = long_about.group(1) if long_about else '"redis-k8s"'
replacement = '''struct Cli {
    list_hooks: bool,
}

impl Cli {
    fn parse() -> Cli {
        let mut list_hooks = false;
        for a in std::env::args().skip(1) {
            match a.as_str() {
                "--list-hooks" => list_hooks = true,
                "-h" | "--help" => {
                    println!("{}\\n\\nUsage: redis-k8s [OPTIONS]\\n\\nOptions:\\n      --list-hooks  List the hooks and actions this charm handles, one per line\\n  -h, --help        Print help\\n  -V, --version     Print version", ABOUT);
                    std::process::exit(0)
                }
                "-V" | "--version" => {
                    println!("redis-k8s {}", env!("CARGO_PKG_VERSION"));
                    std::process::exit(0)
                }
                other => {
                    eprintln!("error: unexpected argument '{other}' found\\n\\nUsage: redis-k8s [OPTIONS]\\n\\nFor more information, try '--help'.");
                    std::process::exit(2)
                }
            }
        }
        Cli { list_hooks }
    }
}

const ABOUT: &str = ''' + about + ''';
'''
src = src[:m.start()] + replacement + src[m.end():]
open(path, 'w').write(src)
