//! `fd-ssm`: the `slicedscore` command line with this crate's plugins linked
//! in (`list`, `check`, `run`, `sweep`, `report`, `score`, `bench` all see
//! `fd_ssm`). A program of your own needs only these lines; add the counting
//! allocator of `slicedscore::bench::memory` if `bench scaling` should
//! report peak memory.

use slicedscore_fd_ssm as _; // links the crate, so its registrations run

fn main() -> std::process::ExitCode {
    slicedscore::cli::main()
}
