//! `aperture import ms PATH.ms URL`: a CASA MeasurementSet (MSv2) as a Zarr visibility
//! dataset, Stokes I, streamed time chunk by time chunk (`formats::ms_import`: a reader
//! thread owns the casacore tables and hands over time chunks of every window, written
//! as they arrive), so memory is bounded by a few time chunks, not the MS. A re-run
//! resumes an interrupted import of the same selection.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use aperture_ms::{ChannelRange, DataColumn, MsError, MsMeta, Plan, Selection, SpwList, TimeRange};
use aperture_pipeline::formats::bundle::VisDtype;
use aperture_pipeline::formats::ms_import::{
    MsImportError, MsReader, Progress, WriteOptions, import_identity, read_pending, remove_pending,
    write_pending,
};
use aperture_pipeline::formats::zarr_vis::{StreamingWriter, delete_dataset, open_dataset};
use aperture_pipeline::plan::ms::{MsSource, dataset_meta, import_manifest, uvw_tb3};
use aperture_pipeline::storage::Store;
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::{check_local_output, check_target, dtype_name, local_dir, located, stored_size};
use crate::common::Context;
use crate::common::fmt::{Summary, bytes, count, radec, rate, seconds};
use crate::common::gridding::PrecisionArg;
use crate::common::output::check_not_input;

/// `--column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColumnArg {
    /// DATA: the observed visibilities.
    Data,
    /// CORRECTED_DATA: after calibration.
    Corrected,
    /// MODEL_DATA: a model's visibilities.
    Model,
}

impl ColumnArg {
    fn column(self) -> DataColumn {
        match self {
            Self::Data => DataColumn::Data,
            Self::Corrected => DataColumn::Corrected,
            Self::Model => DataColumn::Model,
        }
    }
}

/// Import a CASA MeasurementSet (MSv2) as a Zarr visibility dataset of Stokes I.
///
/// One field is imported (--field, default 0) from the selected spectral windows (--spw,
/// default all with rows of the field), channels (--channels, within each spectral
/// window) and times (--time-range). Autocorrelations and rows with FLAG_ROW are
/// dropped. Stokes I is (XX+YY)/2 or (RR+LL)/2 with weight 4/(1/w1 + 1/w2), the weights
/// from WEIGHT_SPECTRUM, else WEIGHT, else 1/SIGMA^2; where one parallel hand is flagged
/// (or has no positive weight) I is the other hand with its weight. UVW are kept as
/// stored (antenna 2 minus antenna 1, aperture's own convention). Rows are placed on a
/// time x baseline grid; cells without a row are stored flagged with zero weight.
///
/// Output windows are --channels-per-window channels of one spectral window each
/// (default: one window per spectral window). The MS is read time chunk by time chunk,
/// each written as soon as it is read (a few time chunks of all windows in memory, at
/// most --read-buffer MiB), so memory stays bounded however large the MS. The dataset's
/// metadata records what was imported (group attribute `aperture.extra.imported_from`:
/// MS path, selection, row and sample counts, flagged fraction). The group metadata is
/// written last: an interrupted import leaves no dataset, and re-running the same
/// command resumes it (windows and time chunks already written are kept); an import
/// that fails on a bad MeasurementSet removes what it wrote.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  aperture import ms obs.ms obs.zarr\n  aperture import ms \
                        obs.ms s3://bucket/obs.zarr --field 1 --spw 0,2-3 --channels 0:64 \
                        --channels-per-window 16 --time-range 0:3600 --column corrected"
)]
pub struct ImportMsArgs {
    /// The MeasurementSet (directory) to import.
    #[arg(value_name = "PATH.ms")]
    pub ms: PathBuf,
    /// Where to write the dataset: a directory path or a file://, s3:// or memory:// URL.
    #[arg(value_name = "URL")]
    pub url: String,
    /// The visibility column: DATA, CORRECTED_DATA or MODEL_DATA.
    #[arg(long, value_enum, default_value_t = ColumnArg::Data)]
    pub column: ColumnArg,
    /// FIELD id to import [default: 0].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub field: Option<usize>,
    /// Spectral windows: ids and inclusive ranges, e.g. 0,2,4-6 [default: every one with
    /// rows of the field].
    #[arg(long, value_name = "LIST")]
    pub spw: Option<SpwList>,
    /// Channels A to B-1 of each selected spectral window, like a Python slice (0:64 is
    /// the first 64); either end may be left out [default: all].
    #[arg(long, value_name = "A:B", allow_hyphen_values = true)]
    pub channels: Option<ChannelRange>,
    /// Times START:END in seconds after the first integration of the field, or
    /// mjd:START:END in MJD seconds (the TIME column's scale); inclusive, compared with
    /// integration midpoints; either end may be left out [default: all].
    #[arg(long, value_name = "START:END", allow_hyphen_values = true)]
    pub time_range: Option<TimeRange>,
    /// Channels per output frequency window; windows never cross spectral windows, so it
    /// must divide each one's selected channels [default: one window per spectral
    /// window].
    #[arg(long, value_name = "C", allow_negative_numbers = true)]
    pub channels_per_window: Option<usize>,
    /// Integrations per chunk [default: chunks of at most 64 MiB of visibilities].
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub time_chunk: Option<usize>,
    /// Stored precision: f32 (complex64 visibilities, float32 weights, as DATA is stored)
    /// or f64 (complex128, float64).
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub precision: PrecisionArg,
    /// Memory for the time chunks in flight (four time chunks of the windows read in one
    /// pass over the MS), MiB; windows that do not fit are read in several passes.
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = 512,
        allow_negative_numbers = true
    )]
    pub read_buffer: usize,
    /// Replace a visibility dataset (or the remains of an interrupted import) at URL.
    /// Without it, a re-run with the same MeasurementSet and options resumes an
    /// interrupted import (or finds nothing to do), and anything else there is refused.
    #[arg(long, visible_alias = "overwrite")]
    pub force: bool,
}

pub fn run_ms(args: &ImportMsArgs, ctx: &Context) -> Result<()> {
    if !aperture_ms::SUPPORTED {
        return Err(anyhow!(MsError::NoSupport {
            path: args.ms.clone()
        }));
    }
    if args.channels_per_window == Some(0) {
        bail!("--channels-per-window 0: must be at least 1");
    }
    if args.time_chunk == Some(0) {
        bail!("--time-chunk 0: must be at least 1");
    }
    if args.read_buffer == 0 {
        bail!("--read-buffer 0: must be at least 1 MiB");
    }
    if let Some(dir) = local_dir(&args.url) {
        check_not_input("URL", &dir, "input MeasurementSet", &args.ms)?;
        check_local_output(&args.url, &dir, &args.ms)?;
    }
    let store = Store::from_url(&args.url).map_err(|e| anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(import(args, ctx, &store))
}

/// A line of progress every tenth of the time chunks (or each one on a terminal).
struct ChunkProgress {
    enabled: bool,
    terminal: bool,
    start: Instant,
}

impl ChunkProgress {
    fn new(ctx: &Context) -> Self {
        Self {
            enabled: ctx.progress.enabled(),
            terminal: std::io::stderr().is_terminal(),
            start: Instant::now(),
        }
    }

    fn advance(&self, p: Progress) {
        let every = if self.terminal {
            1
        } else {
            p.total.div_ceil(10).max(1)
        };
        if self.enabled && (p.done.is_multiple_of(every) || p.done == p.total) {
            let t = self.start.elapsed().as_secs_f64();
            eprintln!(
                "time chunks {}/{} written, {} ({})",
                p.done,
                p.total,
                seconds(t),
                rate(p.samples as f64, t)
            );
        }
    }
}

/// What is at the target before the import, as far as it matters.
enum Target {
    Empty,
    /// A committed dataset, with its import identity (None: not an import, or unreadable).
    Dataset(Option<Value>),
    /// The remains of an interrupted import and its record (None: no record).
    Interrupted(Option<Value>),
}

async fn target(store: &Store, exists: bool, leftover: bool) -> Result<Target> {
    let (os, prefix) = (store.object_store(), store.prefix());
    if exists {
        let ident = open_dataset(os.clone(), prefix)
            .await
            .ok()
            .filter(|d| d.meta().extra.contains_key("imported_from"))
            .map(|d| import_identity(d.meta()));
        return Ok(Target::Dataset(ident));
    }
    if leftover {
        let pending = read_pending(&os, prefix)
            .await
            .map_err(|e| located(store, e))?;
        return Ok(Target::Interrupted(pending));
    }
    Ok(Target::Empty)
}

async fn import(args: &ImportMsArgs, ctx: &Context, store: &Store) -> Result<()> {
    let (os, prefix) = (store.object_store(), store.prefix().clone());
    let url = store.url();
    // The target first: a refusal comes before reading the MS when it can.
    let (exists, leftover) = check_target(store, true).await?;
    let found = target(store, exists, leftover.is_some()).await?;
    if !args.force {
        match (&found, &leftover) {
            (Target::Dataset(None), _) => {
                bail!("{url}: a visibility dataset already exists (add --force to replace it)")
            }
            (Target::Interrupted(None), Some(obj)) => bail!(
                "{url}: is not empty ({obj} exists); choose an empty location, or add --force \
                 to replace what is there"
            ),
            _ => {}
        }
    }

    let sel = Selection {
        column: args.column.column(),
        field: args.field,
        spws: args.spw.as_ref().map(|l| l.0.clone()),
        channels: args.channels,
        time: args.time_range,
    };
    let start = Instant::now();
    let stage = ctx
        .progress
        .stage(format!("reading the tables of {}", args.ms.display()));
    let mut reader = MsReader::spawn(args.ms.clone(), sel, args.channels_per_window);
    let MsSource { meta, plan } = reader.source().await?;
    stage.done_with(&format!(
        "{} of {} rows selected",
        count(plan.rows.selected as usize),
        count(plan.rows.total as usize)
    ));
    if meta.fields.len() > 1 && args.field.is_none() {
        ctx.progress.note(&format!(
            "note: the MeasurementSet has {} fields; importing field 0 ({}), choose \
             another with --field",
            meta.fields.len(),
            meta.fields[0].name
        ));
    }
    let dmeta = dataset_meta(&meta, &plan, args.precision.vis_dtype(), args.time_chunk)?;
    let identity = {
        let mut m = dmeta.clone();
        m.uvw_at_create = true;
        m.extra.insert(
            "imported_from".into(),
            import_manifest(&meta, &plan, 0, 0.0),
        );
        import_identity(&m)
    };
    let other = "was written from another MeasurementSet, selection or layout";
    let resume = match (&found, args.force) {
        (Target::Dataset(Some(id)), false) if *id == identity => {
            drop(reader);
            remove_pending(&os, &prefix)
                .await
                .map_err(|e| located(store, e))?;
            Summary::new()
                .row(
                    "nothing to do",
                    format!(
                        "{url} already holds this import (same MeasurementSet, selection \
                         and layout); add --force to import again"
                    ),
                )
                .print();
            return Ok(());
        }
        (Target::Dataset(_), false) => {
            bail!(
                "{url}: a visibility dataset already exists and {other} (add --force to replace it)"
            )
        }
        (Target::Interrupted(Some(id)), false) if *id == identity => true,
        (Target::Interrupted(_), false) => bail!(
            "{url}: holds an interrupted import that {other}; re-run it with the same \
             options to resume it, or add --force to replace it"
        ),
        (Target::Empty, _) => false,
        (_, true) => {
            let stage = ctx
                .progress
                .stage(format!("removing the old dataset at {url}"));
            delete_dataset(os.clone(), &prefix)
                .await
                .map_err(|e| located(store, e))?;
            stage.done();
            false
        }
    };
    let windows: Vec<usize> = (0..plan.windows.len()).collect();
    let budget_bytes = args.read_buffer.saturating_mul(1 << 20);
    if !resume {
        // Every chunk of every window will be read: start before the dataset is made.
        reader.prefetch(&dmeta, &plan, &windows, budget_bytes);
    }
    let uvw = uvw_tb3(&plan);
    let writer = if resume {
        ctx.progress
            .note(&format!("{url}: resuming an interrupted import"));
        StreamingWriter::resume(os.clone(), &prefix, dmeta, uvw.view()).await
    } else {
        write_pending(&os, &prefix, &identity)
            .await
            .map_err(|e| located(store, e))?;
        StreamingWriter::resume(os.clone(), &prefix, dmeta, uvw.view()).await
    }
    .map_err(|e| located(store, e))?;
    let opts = WriteOptions {
        budget_bytes,
        resume,
    };
    let progress = ChunkProgress::new(ctx);
    let written = reader
        .write(writer.dataset(), &plan, &windows, opts, &mut |p| {
            progress.advance(p)
        })
        .await;
    drop(reader);
    let written = match written {
        Ok(w) => w,
        // A fault of the MeasurementSet: nothing of it is kept.
        Err(e @ MsImportError::Ms(_)) => {
            writer.abort().await;
            return Err(e.into());
        }
        // A storage fault: what was written stays, for a re-run to resume.
        Err(e) => return Err(located_any(store, e)),
    };
    let flagged = written.flagged as usize;
    let t = start.elapsed().as_secs_f64();
    let m = import_manifest(&meta, &plan, written.flagged, t);
    let ds = writer
        .finish([("imported_from".to_owned(), m)])
        .await
        .map_err(|e| located(store, e))?;
    remove_pending(&os, &prefix)
        .await
        .map_err(|e| located(store, e))?;
    let dtype = ds.meta().vis_dtype;
    let (size, objects) = stored_size(store).await?;
    let mut s = summary(args, url, &meta, &plan, flagged, dtype, size, objects, t);
    if resume {
        s.row(
            "resumed",
            format!(
                "an interrupted import: {} windows and {} window time chunks were already \
                 written; {} time chunks read in {} passes",
                written.windows_skipped,
                written.chunks_skipped,
                written.chunks_written,
                written.passes
            ),
        );
    }
    s.print();
    Ok(())
}

/// `e` with the dataset's location.
fn located_any(store: &Store, e: MsImportError) -> anyhow::Error {
    match e {
        MsImportError::Format(e) => located(store, e),
        e => anyhow!(e),
    }
}

fn summary(
    args: &ImportMsArgs,
    url: &str,
    meta: &MsMeta,
    plan: &Plan,
    flagged: usize,
    dtype: VisDtype,
    size: u64,
    objects: usize,
    t: f64,
) -> Summary {
    let r = &plan.rows;
    let mut s = Summary::new();
    s.row(
        "measurement set",
        format!(
            "{} ({} rows, {}{})",
            args.ms.display(),
            count(r.total as usize),
            plan.column.column(),
            meta.telescope
                .as_deref()
                .map(|t| format!(", telescope {t}"))
                .unwrap_or_default()
        ),
    );
    let pc = plan.phase_centre;
    s.row(
        "field",
        format!(
            "{} {} at {}",
            plan.field,
            plan.field_name,
            radec(pc.ra, pc.dec)
        ),
    );
    s.row(
        "rows",
        format!(
            "{} read; dropped {} autocorrelations, {} with FLAG_ROW, {} of other fields, \
             spectral windows or times",
            count(r.selected as usize),
            count(r.autocorrelations as usize),
            count(r.flag_row as usize),
            count(r.not_selected as usize)
        ),
    );
    let l = &plan.layout;
    s.row(
        "grid",
        format!(
            "{} times x {} baselines{}",
            count(l.ntime()),
            count(l.nbaseline()),
            match l.empty_cells() {
                0 => String::new(),
                n => format!(", {} cells without a row (stored flagged)", count(n)),
            }
        ),
    );
    let spws: Vec<String> = plan
        .spws
        .iter()
        .map(|s| {
            format!(
                "{} (channels {}:{}, {})",
                s.spw_id,
                s.chans.start,
                s.chans.end,
                s.basis.name()
            )
        })
        .collect();
    s.row("spectral windows", spws.join(", "));
    let freq = plan.freq_c();
    let (lo, hi) = freq
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &f| {
            (a.min(f), b.max(f))
        });
    s.row(
        "windows",
        format!(
            "{} x {} channels, {:.6}-{:.6} MHz",
            plan.windows.len(),
            plan.windows[0].chans.len(),
            lo / 1e6,
            hi / 1e6
        ),
    );
    let samples = plan.n_samples();
    s.row(
        "flagged",
        format!(
            "{:.4} ({} of {} samples)",
            if samples > 0 {
                flagged as f64 / samples as f64
            } else {
                0.0
            },
            count(flagged),
            count(samples)
        ),
    );
    s.row("weights", plan.weight_source.column());
    s.row("precision", dtype_name(dtype));
    s.row(
        "wrote",
        format!(
            "{url}: {} objects, {} in {} ({})",
            count(objects),
            bytes(size),
            seconds(t),
            rate(samples as f64, t)
        ),
    );
    s
}
