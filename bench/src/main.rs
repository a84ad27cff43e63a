//! `herald-load`: the load generator. Its scenarios arrive with the load-tool issue; until then
//! the binary says so and exits non-zero instead of printing figures.

fn main() -> std::process::ExitCode {
    eprintln!("herald-load: no scenarios yet (they come with the load-tool issue)");
    std::process::ExitCode::from(2)
}
