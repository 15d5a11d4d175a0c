//! The `slicedscore` program: the library's command line
//! ([`slicedscore::cli::main`]) with the counting allocator that lets
//! `bench scaling` report peak memory.

use slicedscore::bench::memory::CountingAllocator;

/// Counts heap bytes so `bench scaling` can report peak memory (the library
/// leaves the allocator to the program).
#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fn main() -> std::process::ExitCode {
    slicedscore::cli::main()
}
