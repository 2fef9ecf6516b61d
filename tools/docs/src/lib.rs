//! The docs' own checks and generated parts: [`settings`] writes
//! docs/settings.md from the programs' clap definitions (`make docs`), and
//! [`links`] finds the relative links of a Markdown file that lead nowhere.
//! The tests in `tests/` hold the repository's docs to both.

pub mod links;
pub mod settings;
