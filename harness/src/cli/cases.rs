//! `harness cases`.

use std::process::ExitCode;

use anyhow::Result;

use crate::preflight::UsageError;

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
    let mut text = format!(
        "{:<10} {:<8} {:<9} {:<26} summary\n",
        "id", "contract", "level", "feature"
    );
    for case in crate::cases::all() {
        text += &format!(
            "{:<10} {:<8} {:<9} {:<26} {}\n",
            case.id,
            case.section,
            case.level().name(),
            case.feature.name(),
            case.summary
        );
    }
    text
}
