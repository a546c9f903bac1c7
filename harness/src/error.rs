//! The harness's typed errors: the ones its callers branch on.

/// Bad input to the harness itself (exit code 2), as opposed to a failed run: refused before
/// any cluster work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// Whether `error` (or anything in its chain) is a [`UsageError`].
pub(crate) fn is_usage_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<UsageError>())
}
