//! Status lines on stderr: a spinner while a stage runs (when stderr is a terminal) and
//! `stage… done in 1.2 s` when it ends. `--quiet` turns them off.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::fmt::seconds;

/// Whether and how to show progress.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
    spinner: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Self {
            enabled: !quiet,
            spinner: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// Starts a stage named `what` (e.g. "reading bundle b/").
    pub fn stage(&self, what: impl Into<String>) -> Stage {
        let what = what.into();
        let bar = self.spinner.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}… {elapsed}") {
                bar.set_style(style);
            }
            bar.set_message(what.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Stage {
            what,
            start: Instant::now(),
            bar,
            enabled: self.enabled,
        }
    }

    /// Whether progress is shown at all (not `--quiet`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A free-form status line (e.g. a note about a default that was chosen).
    pub fn note(&self, text: &str) {
        if self.enabled {
            eprintln!("{text}");
        }
    }
}

/// A running stage; dropping it without [`Stage::done`] (on an error) clears the spinner
/// and prints nothing.
#[derive(Debug)]
pub struct Stage {
    what: String,
    start: Instant,
    bar: Option<ProgressBar>,
    enabled: bool,
}

impl Stage {
    /// Ends the stage; returns its wall time in seconds.
    pub fn done(self) -> f64 {
        self.finish("")
    }

    /// Ends the stage with a detail appended to the status line.
    pub fn done_with(self, detail: &str) -> f64 {
        self.finish(detail)
    }

    fn finish(mut self, detail: &str) -> f64 {
        let t = self.start.elapsed().as_secs_f64();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.enabled {
            let sep = if detail.is_empty() { "" } else { "; " };
            eprintln!("{}… done in {}{sep}{detail}", self.what, seconds(t));
        }
        t
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
