//! `aperture import npy BUNDLE/ URL`: a numpy visibility bundle as a Zarr visibility
//! dataset (MSv4-like layout, one frequency window per chunk column) at a storage URL.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use aperture_pipeline::FormatError;
use aperture_pipeline::formats::bundle::{VisDtype, read_bundle_full};
use aperture_pipeline::formats::zarr_vis::{
    ImportOptions, ImportReport, dataset_exists, delete_dataset, plan_import, write_dataset,
};
use aperture_pipeline::storage::Store;
use clap::{Args, Subcommand};
use futures::TryStreamExt;

use crate::common::Context;
use crate::common::fmt::{Summary, bytes, count, seconds};
use crate::common::gridding::PrecisionArg;
use crate::common::output::check_not_input;

mod ms;
pub use ms::{ImportMsArgs, run_ms};

/// Import visibilities from other formats.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    Npy(ImportNpyArgs),
    Ms(ImportMsArgs),
}

/// Import a numpy visibility bundle as a Zarr visibility dataset.
///
/// Rows are placed on a time x baseline grid by their time (time.npy) and antenna pair
/// (ant1.npy, ant2.npy), in any order; grid cells without a row are stored flagged with
/// zero weight, and two rows with the same time and antennas are an error. Channels
/// are split into frequency windows of --channels-per-window (default: the windows
/// `aperture simulate` recorded in meta.json, else one window); each window is one
/// chunk column, read independently by the imaging workers.
///
/// URL is a directory path, file:///dir, s3://bucket/prefix (endpoint and credentials
/// from the AWS_* environment) or memory://name/prefix. The dataset's group metadata is
/// written last: an interrupted import leaves no dataset (and a failed one removes what
/// it wrote).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  aperture simulate --telescope low --rmax 600 --windows 4 \
                        --channels-per-window 2 --times 7 --out obs/\n  aperture import npy obs/ \
                        obs.zarr"
)]
pub struct ImportNpyArgs {
    /// The visibility bundle (directory) to import.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Where to write the dataset: a directory path or a file://, s3:// or memory:// URL.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Channels per frequency window [default: as recorded by `aperture simulate`, else
    /// all channels in one window].
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    pub channels_per_window: Option<usize>,
    /// Integrations per chunk [default: chunks of at most 64 MiB of visibilities].
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub time_chunk: Option<usize>,
    /// Stored precision: f32 (complex64 visibilities, float32 weights) or f64
    /// (complex128, float64) [default: that of vis.npy].
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Replace a visibility dataset (or the remains of an interrupted import) at URL.
    #[arg(long)]
    pub force: bool,
}

/// The local directory `url` names, if it is a path or a file:// URL.
fn local_dir(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    (!url.contains("://")).then(|| PathBuf::from(url))
}

/// Checks a local output directory before any work: not the bundle, its parent an
/// existing, writable directory, and not itself a file.
fn check_local_output(url: &str, dir: &Path, bundle: &Path) -> Result<()> {
    check_not_input("URL", dir, "input bundle", bundle)?;
    let abs = std::path::absolute(dir).map_err(|e| anyhow!("{url}: {e}"))?;
    let parent = abs
        .parent()
        .ok_or_else(|| anyhow!("{url}: does not name a directory to create"))?;
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{url}: {} is not a directory", parent.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{url}: directory {} does not exist", parent.display())
        }
        Err(e) => bail!("{url}: cannot access {}: {e}", parent.display()),
    }
    if abs.exists() && !abs.is_dir() {
        bail!("{url}: exists and is not a directory");
    }
    let probe_dir = if abs.is_dir() { abs.as_path() } else { parent };
    let probe = probe_dir.join(format!(".aperture-probe-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => bail!(
            "{url}: directory {} is not writable: {e}",
            probe_dir.display()
        ),
    }
    Ok(())
}

/// `key` (a full object path) as a URL of `store`, when it lies under the store's prefix.
fn key_url(store: &Store, key: &str) -> String {
    let prefix = store.prefix().as_ref();
    match key.strip_prefix(prefix) {
        Some(rest) if prefix.is_empty() || rest.is_empty() || rest.starts_with('/') => {
            store.key_url(rest)
        }
        _ => key.to_owned(),
    }
}

/// A dataset error with object keys shown as URLs of `store`.
fn located(store: &Store, e: FormatError) -> anyhow::Error {
    match e {
        FormatError::Zarr { key, message } => anyhow!("{}: {message}", key_url(store, &key)),
        FormatError::MissingWindow { window, key } => anyhow!(
            "window {window} has not been written: {} is missing",
            key_url(store, &key)
        ),
        other => anyhow!(other),
    }
}

/// The first object under the store's prefix, as a URL.
/// Whether a dataset exists at the import target and, if not, any leftover object
/// there; refuses both unless `force`.
pub(super) async fn check_target(store: &Store, force: bool) -> Result<(bool, Option<String>)> {
    let url = store.url();
    let exists = dataset_exists(store.object_store().clone(), store.prefix())
        .await
        .map_err(|e| located(store, e))?;
    let leftover = if exists {
        None
    } else {
        first_object(store).await?
    };
    if !force {
        if exists {
            bail!("{url}: a visibility dataset already exists (add --force to replace it)");
        }
        if let Some(obj) = &leftover {
            bail!(
                "{url}: is not empty ({obj} exists); choose an empty location, or add --force \
                 to replace the remains of an interrupted import"
            );
        }
    }
    Ok((exists, leftover))
}

async fn first_object(store: &Store) -> Result<Option<String>> {
    let first = store
        .object_store()
        .list(Some(store.prefix()))
        .try_next()
        .await
        .map_err(|e| anyhow!("{}: cannot list: {e}", store.url()))?;
    Ok(first.map(|m| key_url(store, m.location.as_ref())))
}

/// Total bytes of the objects under the store's prefix, and their number.
async fn stored_size(store: &Store) -> Result<(u64, usize)> {
    let metas: Vec<_> = store
        .object_store()
        .list(Some(store.prefix()))
        .try_collect()
        .await
        .map_err(|e| anyhow!("{}: cannot list: {e}", store.url()))?;
    Ok((metas.iter().map(|m| m.size).sum(), metas.len()))
}

fn dtype_name(d: VisDtype) -> &'static str {
    match d {
        VisDtype::Complex64 => "complex64 visibilities, float32 weights",
        VisDtype::Complex128 => "complex128 visibilities, float64 weights",
    }
}

pub fn run_npy(args: &ImportNpyArgs, ctx: &Context) -> Result<()> {
    if args.channels_per_window == Some(0) {
        bail!("--channels-per-window 0: must be at least 1");
    }
    if args.time_chunk == Some(0) {
        bail!("--time-chunk 0: must be at least 1");
    }
    if !args.bundle.is_dir() {
        bail!("{}: bundle directory does not exist", args.bundle.display());
    }
    if let Some(dir) = local_dir(&args.url) {
        check_local_output(&args.url, &dir, &args.bundle)?;
    }
    let store = Store::from_url(&args.url).map_err(|e| anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(import(args, ctx, &store))
}

async fn import(args: &ImportNpyArgs, ctx: &Context, store: &Store) -> Result<()> {
    let (os, prefix) = (store.object_store(), store.prefix().clone());
    let url = store.url();
    // The target first: a refusal comes before reading the bundle.
    let (exists, leftover) = check_target(store, args.force).await?;

    let stage = ctx
        .progress
        .stage(format!("reading {}", args.bundle.display()));
    let bundle = read_bundle_full(&args.bundle)?;
    for (name, present) in [
        ("time.npy", args.bundle.join("time.npy").is_file()),
        ("ant1.npy", args.bundle.join("ant1.npy").is_file()),
        ("ant2.npy", args.bundle.join("ant2.npy").is_file()),
    ] {
        if !present {
            bail!(
                "{}: has no {name}; import places rows on the time x baseline grid by \
                 time.npy, ant1.npy and ant2.npy",
                args.bundle.display()
            );
        }
    }
    let opts = ImportOptions {
        channels_per_window: args.channels_per_window,
        time_chunk: args.time_chunk,
        vis_dtype: args.precision.map(|p| p.vis_dtype()),
    };
    let (meta, block, report) = plan_import(&bundle, &args.bundle, &opts).map_err(|e| match e {
        FormatError::Invalid { field, reason } if field == "channels_per_window" => {
            anyhow!("--channels-per-window: {reason}")
        }
        FormatError::Invalid { field, reason }
            if field.ends_with("time_chunk") && args.time_chunk.is_some() =>
        {
            anyhow!("--time-chunk: {reason}")
        }
        other => anyhow!(other),
    })?;
    drop(bundle);
    stage.done_with(&format!("{} rows", count(report.rows)));

    if exists || leftover.is_some() {
        let stage = ctx
            .progress
            .stage(format!("removing the old dataset at {url}"));
        delete_dataset(os.clone(), &prefix)
            .await
            .map_err(|e| located(store, e))?;
        stage.done();
    }

    let stage = ctx
        .progress
        .stage(format!("writing {} windows to {url}", report.nwindows));
    let start = Instant::now();
    let freq = meta.freq_c();
    write_dataset(os, &prefix, meta, &block)
        .await
        .map_err(|e| located(store, e))?;
    let t = start.elapsed().as_secs_f64();
    stage.done();
    let (size, objects) = stored_size(store).await?;
    summary(args, url, &report, &freq, size, objects, t).print();
    Ok(())
}

fn summary(
    args: &ImportNpyArgs,
    url: &str,
    r: &ImportReport,
    freq: &[f64],
    size: u64,
    objects: usize,
    t: f64,
) -> Summary {
    let mut s = Summary::new();
    s.row(
        "bundle",
        format!("{} ({} rows)", args.bundle.display(), count(r.rows)),
    );
    s.row(
        "grid",
        format!(
            "{} times x {} baselines{}",
            count(r.ntime),
            count(r.nbaseline),
            if r.missing_cells == 0 {
                String::new()
            } else {
                format!(
                    ", {} cells without a row (stored flagged)",
                    count(r.missing_cells)
                )
            }
        ),
    );
    let (lo, hi) = freq
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &f| {
            (a.min(f), b.max(f))
        });
    s.row(
        "windows",
        format!(
            "{} x {} channels, {:.6}-{:.6} MHz",
            r.nwindows,
            r.channels_per_window,
            lo / 1e6,
            hi / 1e6
        ),
    );
    s.row("precision", dtype_name(r.vis_dtype));
    s.row(
        "wrote",
        format!(
            "{url}: {} objects, {} in {} ({}/s)",
            count(objects),
            bytes(size),
            seconds(t),
            bytes(rate_bytes(size, t))
        ),
    );
    s
}

/// Bytes per second, 0 for an instant.
fn rate_bytes(size: u64, t: f64) -> u64 {
    if t > 0.0 { (size as f64 / t) as u64 } else { 0 }
}
