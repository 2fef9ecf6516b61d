//! Asking the operator before a command does what cannot be taken back.

use anyhow::{bail, Context};

/// Says `consequence` ("a restore replaces the data of every member of g")
/// and asks for the group's name; off a terminal nobody can answer, so only
/// `--yes` confirms there.
pub fn by_group_name(group: &str, consequence: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail!("{consequence}; confirm with --yes when not running on a terminal");
    }
    eprint!("{consequence}. Type the group's name to go on: ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    if answer.trim() != group {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}
