//! How library errors become messages and exit codes.

use venom_core::Error;

/// A failed command: the message for stderr (without the `venom: ` prefix)
/// and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong ("" when it was already reported).
    pub message: String,
    /// Process exit code: 1 for failures, 2 for usage errors.
    pub code: u8,
}

impl Failure {
    /// A runtime failure (exit code 1).
    pub fn new(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 1 }
    }

    /// Failure whose details were already printed.
    pub fn reported() -> Failure {
        Failure { message: String::new(), code: 1 }
    }
}

/// Operator wording for a core error about segment `name`.
pub fn describe(name: &str, e: &Error) -> String {
    match e {
        Error::NotFound(_) => format!("segment '{name}' not found"),
        Error::InUse { pid, .. } => {
            format!("segment '{name}' is in use by live process {pid}; use --force to remove it anyway")
        }
        Error::InvalidName { reason, .. } => format!("invalid segment name '{name}': {reason}"),
        other => format!("{name}: {other}"),
    }
}

/// [`describe`] as a [`Failure`].
pub fn core(name: &str, e: &Error) -> Failure {
    Failure::new(describe(name, e))
}

/// A `venom-collections` error about `name`.
pub fn collections(name: &str, e: &venom_collections::Error) -> Failure {
    match e {
        venom_collections::Error::Core(c) => core(name, c),
        other => Failure::new(format!("{name}: {other}")),
    }
}

/// Writes `value` as pretty JSON to stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::new(format!("json: {e}")))?;
    println!("{text}");
    Ok(())
}
