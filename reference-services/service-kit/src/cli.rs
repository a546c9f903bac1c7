//! Go-style command line: `-conf <dir>` (also `--conf`, `-conf=<dir>`, `--conf=<dir>`).

use std::path::PathBuf;

/// Configuration directory used when `-conf` is not given.
pub const DEFAULT_CONF_DIR: &str = "/app/conf";

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// Directory holding `config.yaml` and `remote.yaml`.
    pub conf: PathBuf,
}

impl Cli {
    /// Parses the arguments after the program name.
    pub fn parse_from(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
        let mut conf = PathBuf::from(DEFAULT_CONF_DIR);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let flag = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
            match flag.map(|f| f.split_once('=').map_or((f, None), |(k, v)| (k, Some(v)))) {
                Some(("conf", Some(value))) => conf = non_empty(value)?,
                Some(("conf", None)) => {
                    conf = non_empty(&args.next().ok_or("flag needs an argument: -conf")?)?
                }
                Some(("h" | "help", None)) => return Err(usage()),
                _ => return Err(format!("unknown argument {arg:?}\n{}", usage())),
            }
        }
        Ok(Cli { conf })
    }
}

fn non_empty(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("-conf needs a non-empty directory".into());
    }
    Ok(PathBuf::from(value))
}

fn usage() -> String {
    format!("usage: -conf <dir>  config directory (default {DEFAULT_CONF_DIR})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::parse_from(args.iter().map(|a| a.to_string()))
    }

    #[rstest]
    #[case(&[], DEFAULT_CONF_DIR)]
    #[case(&["-conf", "/data/conf"], "/data/conf")]
    #[case(&["--conf", "conf"], "conf")]
    #[case(&["-conf=./c"], "./c")]
    #[case(&["--conf=/x", "-conf", "/y"], "/y")]
    fn accepts_go_and_gnu_styles(#[case] args: &[&str], #[case] expected: &str) {
        assert_eq!(parse(args).unwrap().conf, PathBuf::from(expected));
    }

    #[rstest]
    #[case(&["-conf"], "flag needs an argument: -conf")]
    #[case(&["-conf="], "-conf needs a non-empty directory")]
    #[case(&["conf"], "unknown argument \"conf\"")]
    #[case(&["-config", "x"], "unknown argument \"-config\"")]
    #[case(&["-h"], "usage: -conf <dir>")]
    fn rejects_bad_arguments(#[case] args: &[&str], #[case] message: &str) {
        let error = parse(args).unwrap_err();
        assert!(error.starts_with(message), "{error}");
    }
}
