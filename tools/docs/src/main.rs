//! `make docs`: writes docs/settings.md from the programs' own flags, or with
//! `--check` says whether it is up to date.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use etcd_aws_docs::settings;

/// Writes the tables of every program's flags and settings.
#[derive(Debug, Parser)]
#[command(name = "settings-doc")]
struct Options {
    /// The document to write (or to check).
    #[arg(long, env = "SETTINGS_DOC_OUTPUT", default_value = "docs/settings.md")]
    output: PathBuf,
    /// Only compare: fail when the document differs from what would be written.
    #[arg(long, env = "SETTINGS_DOC_CHECK")]
    check: bool,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let document = settings::render(&settings::programs());
    if options.check {
        let current = std::fs::read_to_string(&options.output)
            .with_context(|| format!("cannot read {}", options.output.display()))?;
        if current != document {
            bail!(
                "{} is out of date with the programs' flags: run `make docs`",
                options.output.display()
            );
        }
        return Ok(());
    }
    std::fs::write(&options.output, document)
        .with_context(|| format!("cannot write {}", options.output.display()))?;
    println!("written {}", options.output.display());
    Ok(())
}
