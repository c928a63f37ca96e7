//! PostgreSQL's own programs, `pg_dump` and `pg_restore`, run for backups of a
//! PostgreSQL deployment: their custom format is what every PostgreSQL operator already
//! knows how to keep, inspect and restore, and it holds the whole database (the uploaded
//! files too, when they live in it) consistently, which a format of our own would have to
//! reinvent.

use std::path::PathBuf;
use std::process::Stdio;

use percent_encoding::percent_decode_str;
use tokio::process::Command;

use crate::error::{Error, Result};
use crate::store::redact_url;

/// Where Debian's `postgresql-client` puts each major version's programs.
const DEBIAN_BIN_DIRS: &str = "/usr/lib/postgresql";

/// The program `name` (`pg_dump`, `pg_restore`): the newest Debian version's first, since
/// a newer `pg_dump` reads older servers but not the other way round; else the `PATH`'s.
pub fn program(name: &str) -> Result<PathBuf> {
    let newest = std::fs::read_dir(DEBIAN_BIN_DIRS)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let path = entry.path().join("bin").join(name);
            path.is_file().then_some((version, path))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, path)) = newest {
        return Ok(path);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            Error::Config(format!(
                "{name} was not found ({DEBIAN_BIN_DIRS}/*/bin, PATH): install PostgreSQL's client programs (Debian: postgresql-client) on this machine"
            ))
        })
}

/// `url` without its password, and the password (percent-decoded): the password goes to
/// the program in `PGPASSWORD`, not on its command line, where any local user could read it.
fn split_password(url: &str) -> (String, Option<String>) {
    let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) else {
        return (url.to_string(), None);
    };
    if at < scheme {
        return (url.to_string(), None);
    }
    match url[scheme + 3..at].split_once(':') {
        Some((user, password)) => (
            format!("{}{user}{}", &url[..scheme + 3], &url[at..]),
            Some(
                percent_decode_str(password)
                    .decode_utf8_lossy()
                    .into_owned(),
            ),
        ),
        None => (url.to_string(), None),
    }
}

/// Run `program` with `args` against the database at `url`; its error output becomes the
/// error's text.
pub async fn run(program_name: &str, url: &str, args: &[&str]) -> Result<()> {
    let program = program(program_name)?;
    let (without_password, password) = split_password(url);
    let mut command = Command::new(&program);
    command
        .args(args)
        .arg(format!("--dbname={without_password}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = command
        .output()
        .await
        .map_err(|e| Error::Internal(format!("could not run {}: {e}", program.display())))?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Internal(format!(
        "{program_name} on {} failed ({}): {}",
        redact_url(url),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_decoded() {
        assert_eq!(
            split_password("postgres://zhiku:p%40ss@db:5432/zhiku"),
            (
                "postgres://zhiku@db:5432/zhiku".to_string(),
                Some("p@ss".to_string())
            )
        );
        assert_eq!(
            split_password("postgres://zhiku@db/zhiku"),
            ("postgres://zhiku@db/zhiku".to_string(), None)
        );
        assert_eq!(
            split_password("postgres://db/zhiku?user=a"),
            ("postgres://db/zhiku?user=a".to_string(), None)
        );
    }
}
