//! `rowplay`: parse the command line, run, map the outcome to an exit code
//! (0 success, 1 runtime error, 2 usage error).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A panic is a bug; still, the user gets one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error (a bug in rowplay, please report it): {msg}{at}");
    }));
    let cli = match rowplay::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print and succeed; real usage errors exit 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match rowplay::app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (e.g. `rowplay inspect x | head`) is not an error.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            for line in e.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::from(1)
        }
    }
}
