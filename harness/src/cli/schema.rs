//! `harness schema`.

use std::process::ExitCode;

use anyhow::Result;

use crate::schema::{Document, render};

#[derive(clap::Args)]
pub(super) struct SchemaArgs {
    /// Which document's schema.
    #[arg(value_enum)]
    document: Document,
}

impl SchemaArgs {
    pub(super) fn execute(self) -> Result<ExitCode> {
        print!("{}", render(self.document));
        Ok(ExitCode::SUCCESS)
    }
}
