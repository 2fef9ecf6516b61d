//! docs/settings.md is what the programs parse, and every setting can be
//! set from the environment and says what it does.

use std::path::Path;

use etcd_aws_docs::settings::{documented, programs, render};

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap_or(Path::new("."))
}

#[test]
fn docs_settings_md_is_what_the_programs_parse() {
    let path = workspace_root().join("docs/settings.md");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let expected = render(&programs());
    assert!(
        current == expected,
        "{} is out of date with the programs' flags: run `make docs`",
        path.display()
    );
}

fn every_setting() -> Vec<(String, clap::Arg)> {
    fn walk(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for argument in documented(command) {
            out.push((path.to_owned(), argument.clone()));
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut out = Vec::new();
    for program in programs() {
        walk(&program.command, program.command.get_name(), &mut out);
    }
    out
}

#[test]
fn every_flag_can_be_set_from_the_environment() {
    let missing: Vec<String> = every_setting()
        .iter()
        .filter(|(_, argument)| argument.get_long().is_some() && argument.get_env().is_none())
        .map(|(path, argument)| format!("{path} --{}", argument.get_id()))
        .collect();
    assert!(missing.is_empty(), "flags without env: {missing:?}");
}

#[test]
fn every_setting_says_what_it_does() {
    let silent: Vec<String> = every_setting()
        .iter()
        .filter(|(_, argument)| {
            argument
                .get_help()
                .is_none_or(|help| help.to_string().trim().is_empty())
        })
        .map(|(path, argument)| format!("{path} {}", argument.get_id()))
        .collect();
    assert!(silent.is_empty(), "settings without help: {silent:?}");
}
