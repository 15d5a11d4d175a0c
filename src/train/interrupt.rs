//! Clean stops on SIGINT and SIGTERM.
//!
//! [`install`] (called by the command line, once per process) routes both
//! signals to one handler: the first sets a flag that the training loop
//! polls after every step ([`requested`]) — it then saves a checkpoint,
//! marks the run `interrupted` and says how to resume; a second signal ends
//! the process at once (exit status 130). Library users who handle signals
//! themselves can call [`request`] instead.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::OnceLock;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicU32 = AtomicU32::new(0);

/// Installs the handler of SIGINT and SIGTERM (a no-op after the first call).
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let result = ctrlc::set_handler(|| {
            if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
                REQUESTED.store(true, Ordering::SeqCst);
                eprintln!("\nstopping after this step (saving a checkpoint); signal again to quit at once");
            } else {
                eprintln!("\nquitting at once");
                std::process::exit(130);
            }
        });
        if let Err(e) = result {
            tracing::warn!("cannot handle SIGINT/SIGTERM: {e}; an interrupted run will not save a checkpoint");
        }
    });
}

/// Asks the running training loop to stop cleanly after its current step.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Forgets a handled stop request (the next run in the process starts clean).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}
