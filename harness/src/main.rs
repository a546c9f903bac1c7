//! `harness`: run the conformance suite, or bring a local cluster up and down (see
//! [`harness::cli`]).

fn main() -> std::process::ExitCode {
    harness::cli::main()
}
