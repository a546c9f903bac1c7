//! `harness cases`.

use std::process::ExitCode;

use anyhow::Result;

use crate::error::UsageError;

#[derive(clap::Args)]
pub(super) struct CasesArgs {
    /// Print one case's entry of the contract (docs/contract.md): what it does, what a
    /// failure usually means and the clauses it traces to.
    #[arg(long, value_name = "ID")]
    explain: Option<String>,
}

impl CasesArgs {
    pub(super) fn execute(self) -> Result<ExitCode> {
        match self.explain {
            Some(id) => {
                let text = crate::contract::explain(&id).ok_or_else(|| {
                    UsageError(format!("unknown case {id}; `harness cases` lists them"))
                })?;
                print!("{text}");
            }
            None => print!("{}", list()),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The registered cases, one row each.
fn list() -> String {
    let header = ["id", "contract", "level", "feature", "summary"].map(String::from);
    let rows = crate::cases::all().into_iter().map(|case| {
        [
            case.id.to_string(),
            case.section.to_string(),
            case.level().name().to_string(),
            case.feature.name().to_string(),
            case.summary.to_string(),
        ]
    });
    let rows: Vec<[String; 5]> = std::iter::once(header).chain(rows).collect();
    crate::table::render(&rows, |_| false, false)
}
