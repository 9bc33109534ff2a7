//! The commands beside `serve` that look after a data file: backup, check, compact, export, import,
//! user administration, and `doctor`, which looks over the whole installation. (The backups `serve` takes on a schedule are `crate::backups`.)
//!
//! They are for the person running the appliance, at a terminal or in a cron job: results go to
//! standard output, progress and errors to standard error, and every failure ends in a sentence
//! that says what to do. The work itself lives in `store` (snapshots, checks, records) and is
//! shared with the server; this module only opens files, asks for passwords and prints. Commands
//! that change the file refuse while a server holds it rather than wait or interfere.

mod backup;
mod check;
mod compact;
mod doctor;
mod export;
mod import;
mod progress;
pub(crate) mod users;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::Command;
use crate::store::{DEFAULT_CACHE_BYTES, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "{} is in use by a running imgvault server; stop it first{hint}",
        path.display()
    )]
    InUse { path: PathBuf, hint: &'static str },
    #[error("there is no data file at {} (set --data or IMGVAULT_DATA)", .0.display())]
    NoDataFile(PathBuf),
    #[error("{}: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A request the command cannot carry out, in words for the person who made it.
    #[error("{0}")]
    Refused(String),
}

impl OpsError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| OpsError::Io { what, source }
    }

    /// Wraps a store error about the file at `path`, naming `InUse` plainly.
    fn store<'a>(path: &'a Path, hint: &'static str) -> impl FnOnce(StoreError) -> Self + 'a {
        move |source| match source {
            StoreError::InUse => OpsError::InUse {
                path: path.to_path_buf(),
                hint,
            },
            source => OpsError::Store {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

/// What a command found: `Problems` exits with 1 although nothing failed (`check`).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Problems,
}

/// Runs one of the commands beside `serve`, printing its error, and gives the exit status.
pub fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Serve(_) => unreachable!("serve is run by the binary itself"),
        Command::Backup(args) => backup::run(args),
        Command::Check(args) => check::run(args),
        Command::Compact(args) => compact::run(args),
        Command::Doctor(args) => doctor::run(*args),
        Command::Export(args) => export::run(args),
        Command::Import(args) => import::run(args),
        Command::User(command) => users::run(command),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(e) => {
            eprintln!("imgvault: {e}");
            ExitCode::from(1)
        }
    }
}

/// Opens an existing data file for a command that changes it (or needs it to stay still), bringing
/// an older schema up to date as `serve` would.
fn open_existing(path: &Path) -> Result<Store, OpsError> {
    if !path.is_file() {
        return Err(OpsError::NoDataFile(path.to_path_buf()));
    }
    Store::open(path, DEFAULT_CACHE_BYTES).map_err(OpsError::store(path, ""))
}

/// Reads a password: from the terminal without echo (asked twice when `confirm`), or from the
/// first line of standard input when that is not a terminal (scripts, tests).
fn read_password(prompt: &str, confirm: bool) -> Result<String, OpsError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(OpsError::io("reading the password from standard input"))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = ask_hidden(prompt)?;
    if confirm && ask_hidden("again: ")? != first {
        return Err(OpsError::Refused("the passwords differ".into()));
    }
    Ok(first)
}

/// Asks on the terminal with echo off (through `stty`, which every Unix has; where it is missing
/// the password is echoed rather than refused).
fn ask_hidden(prompt: &str) -> Result<String, OpsError> {
    struct Echo(bool);
    impl Drop for Echo {
        fn drop(&mut self) {
            if self.0 {
                let _ = stty("echo");
                eprintln!();
            }
        }
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let _echo = Echo(stty("-echo"));
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(OpsError::io("reading the password"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn stty(setting: &str) -> bool {
    std::process::Command::new("stty")
        .arg(setting)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `12.3 MiB`: sizes as people read them.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} bytes"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MiB");
    }
}
