#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    qaqpa_gateway::cli::main()
}
