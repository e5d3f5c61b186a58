//! The `bulkhead` binary: parse the command line, set up logging, hand over to `cli`.

use std::process::ExitCode;

use clap::Parser;

// candle allocates and frees large tensors constantly; glibc's malloc turns each into an
// mmap/munmap pair (a third of CPU time in the kernel). mimalloc roughly doubles
// embedding throughput (DEPENDENCY-NOTES.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = bulkhead::cli::Cli::parse();
    bulkhead::logging::init();
    #[cfg(feature = "ablation")]
    {
        if let Err(error) = bulkhead::isolation::ablation::from_env() {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
        eprintln!(
            "warning: ablation test build; isolation layers off: {:?}",
            bulkhead::isolation::ablation::off()
        );
    }
    match bulkhead::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.0);
            ExitCode::from(1)
        }
    }
}
