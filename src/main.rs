//! The `imgvault` binary: parse the command line, set up logging, run.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use imgvault::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

/// How long the exit waits for blocking work `serve` no longer waits for.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("imgvault=info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal; none in a file or the journal, where the escape
        // codes would be read as text. `NO_COLOR` turns them off at a terminal too.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();

    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        None => cli.serve,
        Some(other) => return imgvault::ops::run(other),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("imgvault: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        // Installed before `serve` starts: a SIGTERM sent while the data file opens, or the moment
        // a supervisor (or a test) reads `listening on`, must find the handler in place, not the
        // default action that kills the process without closing the data file.
        let shutdown = shutdown_signal()?;
        imgvault::serve(args.into_config(), shutdown)
            .await
            .map_err(|e| e.to_string())
    });
    // `serve` has waited for its own work; what may still run is a task it let go of (a data
    // file still opening when a stop was asked), which must not hold the exit up for long.
    runtime.shutdown_timeout(EXIT_GRACE);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("imgvault: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the handlers for SIGINT (Ctrl-C) and SIGTERM (service managers, `docker stop`) now,
/// and returns a future that resolves on the first of them. A second signal during the graceful
/// shutdown that follows ends the process at once, as an impatient Ctrl-C Ctrl-C means: the data
/// file is then repaired at the next start, as after a crash.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))
        };
        let mut interrupt = install(SignalKind::interrupt(), "SIGINT")?;
        let mut terminate = install(SignalKind::terminate(), "SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::info!(
                "stopping: finishing the requests in flight (a second Ctrl-C stops at once)"
            );
            tokio::spawn(async move {
                let code = tokio::select! {
                    _ = interrupt.recv() => 128 + libc::SIGINT,
                    _ = terminate.recv() => 128 + libc::SIGTERM,
                };
                tracing::warn!(
                    "second stop signal: exiting without waiting for requests in flight"
                );
                std::process::exit(code);
            });
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// glibc gives each thread that allocates its own arena (up to 8 per core); with large uploads
/// passing between threads, that multiplies resident memory. Two arenas keep a small machine's
/// memory bounded at no measurable cost in speed here.
///
/// glibc also raises its mmap threshold each time a large block is freed, after which even
/// multi-megabyte image buffers come from the heap, whose holes stay resident after a burst. A
/// fixed 1 MiB threshold keeps those in their own mappings, returned to the system when freed,
/// while request bodies and decoded uploads (a few hundred KB) stay on the faster heap: a lower
/// threshold cost 0.65 ms of CPU per upload in page faults here. Measured over a bench.py run
/// (ingest at c=1 and 32, then reads): peak RSS 87 MiB and 1,126 uploads/s at c=32, against
/// 101 MiB and 1,094/s with a 4 MiB threshold and 66 MiB and 830/s with 128 KiB.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's own tunables, when given, are the user's to set.
        let given = |name: &str| std::env::var_os(name).is_some();
        // SAFETY: mallopt only sets allocator parameters; it runs before any other thread exists.
        unsafe {
            if !given("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if !given("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
            }
        }
    }
}
