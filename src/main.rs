//! The `spoc` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    spoc_engine::cli::main()
}
