//! `heinfer-server`: the KServe v2 server an operator runs. It holds evaluation keys
//! and ciphertexts only; no client code (key generation, decryption) is linked in.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

// The same allocator as `heinfer`: glibc returns large polynomial buffers to the OS on
// free and faults fresh pages in for the next evaluation.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "heinfer-server",
    version,
    about = "Serve an heinfer model repository over KServe v2 (HTTP with binary data, and gRPC), as Triton with the heinfer backend would"
)]
struct Cli {
    #[command(flatten)]
    args: server::ServeArgs,
}

fn main() -> ExitCode {
    match server::serve(Cli::parse().args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
