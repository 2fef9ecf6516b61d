//! docs/settings.md: every flag and setting of the four programs, written
//! from their own clap definitions, so the tables say what the programs
//! parse and cannot drift from it. `make docs` writes the file; a test fails
//! when it is out of date, or when a flag has no environment variable or no
//! help (the functions are configured by their environment alone, and the
//! agent by user-data's environment).

use std::fmt::Write as _;

use clap::{Arg, ArgAction, Command, CommandFactory};

/// One program and how it is configured.
pub struct Program {
    pub command: Command,
    /// One sentence on where its settings come from in a deployed stack.
    pub configured_by: &'static str,
}

/// The programs, in the order a reader meets them.
pub fn programs() -> Vec<Program> {
    vec![
        Program {
            command: etcd_aws_cfn::cli::Cli::command(),
            configured_by: "The operator's command line. Each flag can also be set in the environment.",
        },
        Program {
            command: etcd_aws::cli::Cli::command(),
            configured_by: "The node agent. On a stack's nodes the user-data sets the environment variables; the flags are for running it by hand.",
        },
        Program {
            command: etcd_aws_backup::config::EnvConfig::command(),
            configured_by: "The backup, capture and maintenance functions (one binary). The stack sets the environment variables; the flags are for running it outside Lambda.",
        },
        Program {
            command: etcd_aws_lifecycle::config::Config::command(),
            configured_by: "The lifecycle function. The stack sets the environment variables; the flags are for running it outside Lambda.",
        },
    ]
}

/// The whole document.
pub fn render(programs: &[Program]) -> String {
    let mut out = String::from(
        "# Settings\n\n\
         Every flag and environment variable of the programs, with its default. \
         Generated from the programs' own definitions by `make docs` \
         (`tools/docs`); a test fails when this file is out of date.\n",
    );
    let _ = write!(
        out,
        "\nBeside these, every program reads `{}` (the log filter, in `RUST_LOG`'s syntax; \
         `info` when unset) and the AWS SDK's standard environment (`AWS_REGION`, \
         `AWS_ENDPOINT_URL`, credentials).\n",
        etcd_aws_core::contract::names::env::LOG_FILTER
    );
    for program in programs {
        let name = program.command.get_name().to_owned();
        let _ = write!(out, "\n## {name}\n\n{}\n", program.configured_by);
        if let Some(about) = program.command.get_about() {
            let _ = write!(out, "\n{}\n", sentence(&one_line(&about.to_string())));
        }
        render_command(&mut out, &program.command, &name);
    }
    out
}

fn render_command(out: &mut String, command: &Command, path: &str) {
    let arguments: Vec<&Arg> = documented(command).collect();
    if !arguments.is_empty() {
        out.push_str("\n| flag | environment | default | what it does |\n|---|---|---|---|\n");
        for argument in arguments {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                flag(argument),
                argument
                    .get_env()
                    .map_or_else(|| "-".to_owned(), |e| format!("`{}`", e.to_string_lossy())),
                default(argument),
                cell(&what(argument)),
            );
        }
    }
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = format!("{path} {}", sub.get_name());
        let _ = write!(out, "\n### {path}\n");
        if let Some(about) = sub.get_about() {
            let _ = write!(out, "\n{}\n", sentence(&one_line(&about.to_string())));
        }
        render_command(out, sub, &path);
    }
}

/// The arguments a reader sets: not clap's own help and version.
pub fn documented(command: &Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|argument| {
        !argument.is_hide_set()
            && !matches!(
                argument.get_action(),
                ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
            )
    })
}

fn flag(argument: &Arg) -> String {
    match argument.get_long() {
        Some(long) => format!("`--{long}`"),
        None => format!("`<{}>`", argument.get_id().as_str().to_uppercase()),
    }
}

fn default(argument: &Arg) -> String {
    let defaults: Vec<String> = argument
        .get_default_values()
        .iter()
        .map(|value| value.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() {
        format!("`{}`", defaults.join(","))
    } else if argument.is_required_set() {
        "required".to_owned()
    } else if !argument.get_action().takes_values() {
        "off".to_owned()
    } else {
        "-".to_owned()
    }
}

/// The argument's help, and its possible values when it has a closed set.
pub fn what(argument: &Arg) -> String {
    let help = argument
        .get_long_help()
        .or(argument.get_help())
        .map(|help| sentence(&one_line(&help.to_string())))
        .unwrap_or_default();
    let values: Vec<String> = if argument.get_action().takes_values() {
        argument
            .get_possible_values()
            .iter()
            .filter(|value| !value.is_hide_set())
            .map(|value| format!("`{}`", value.get_name()))
            .collect()
    } else {
        Vec::new()
    };
    if values.is_empty() {
        help
    } else {
        format!("{help} One of {}.", values.join(", "))
    }
}

/// clap drops a one-line doc comment's final period; a table of them reads
/// better with it.
fn sentence(text: &str) -> String {
    if text.is_empty() || text.ends_with(['.', '!', '?', ':']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A table cell: a pipe would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A made-up program.
    #[derive(Parser)]
    #[command(name = "sample", about = "A sample program")]
    struct Sample {
        /// Where it goes.
        #[arg(long, env = "SAMPLE_TARGET")]
        target: String,
        /// How often, a | b.
        #[arg(long, env = "SAMPLE_EVERY", default_value = "30s")]
        every: String,
        /// Whether it shouts.
        #[arg(long, env = "SAMPLE_LOUD")]
        loud: bool,
        /// The output's shape.
        #[arg(long, env = "SAMPLE_FORMAT", value_parser = ["json", "text"], default_value = "json")]
        format: String,
    }

    fn document() -> String {
        render(&[Program {
            command: Sample::command(),
            configured_by: "By hand.",
        }])
    }

    #[test]
    fn a_required_flag_says_so() {
        assert!(
            document().contains("| `--target` | `SAMPLE_TARGET` | required | Where it goes. |"),
            "{}",
            document()
        );
    }

    #[test]
    fn a_default_is_shown_and_a_pipe_in_the_help_is_escaped() {
        assert!(
            document().contains("| `--every` | `SAMPLE_EVERY` | `30s` | How often, a \\| b. |"),
            "{}",
            document()
        );
    }

    #[test]
    fn a_switch_is_off_unless_set() {
        assert!(
            document().contains("| `--loud` | `SAMPLE_LOUD` | off | Whether it shouts. |"),
            "{}",
            document()
        );
    }

    #[test]
    fn a_closed_set_of_values_is_listed() {
        assert!(
            document().contains("The output's shape. One of `json`, `text`. |"),
            "{}",
            document()
        );
    }

    #[test]
    fn clap_help_is_not_a_setting() {
        assert!(!document().contains("--help"), "{}", document());
    }
}
