//! The program of the harness's own pod image, which the harness supplies on every backend like
//! the implementation's images: `harness-pod idle` runs until it is stopped (SIGTERM or SIGINT),
//! listening nowhere. The foreign and never-Ready pods of the cases run it, so no case depends
//! on a tool inside the implementation's image.

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let mode = std::env::args().nth(1);
    match mode.as_deref() {
        Some("idle") => idle(),
        _ => {
            eprintln!("usage: harness-pod idle");
            ExitCode::from(2)
        }
    }
}

/// Waits for SIGTERM or SIGINT, then exits 0.
fn idle() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("harness-pod: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let stopped = runtime.block_on(async {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        eprintln!("harness-pod: idle until stopped");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        std::io::Result::Ok(())
    });
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("harness-pod: cannot wait for signals: {error}");
            ExitCode::FAILURE
        }
    }
}
