//! How a command fails: one line for the person at the terminal, and the exit code.

use std::process::ExitCode;

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    message: String,
    exit: u8,
}

impl Failure {
    /// The operation failed or found nothing: exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit: 1,
        }
    }

    /// The admin API refused the operation with `code` (`UNKNOWN_JOB`, ...): exit code 1.
    pub fn api(code: String, message: String) -> Self {
        let message = if code.is_empty() {
            message
        } else {
            format!("{message} ({code})")
        };
        Failure::failed(message)
    }

    /// The command line is wrong: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit: 2,
        }
    }

    /// The file is held by a running process: exit code 3.
    pub fn held(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit: 3,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
