//! Reading and writing visibility bundles as progress stages.

use std::path::Path;

use anyhow::Result;
use aperture_imaging::vis::VisBlock;
use aperture_pipeline::formats::bundle::{
    BundleMeta, VisDtype, WriteBundleOptions, read_bundle_with_meta, write_bundle,
};

use super::Context;
use super::fmt::rows_by_channels;

/// Reads the bundle in `dir` with its metadata.
pub fn read(ctx: &Context, dir: &Path) -> Result<(VisBlock, BundleMeta)> {
    let stage = ctx.progress.stage(format!("reading {}", dir.display()));
    let (block, meta) = read_bundle_with_meta(dir)?;
    stage.done_with(&rows_by_channels(&block));
    Ok((block, meta))
}

/// Writes `block` and `meta` as the bundle `dir` (already checked by
/// [`super::output::check_bundle_output`]).
pub fn write(
    ctx: &Context,
    dir: &Path,
    block: &VisBlock,
    meta: &BundleMeta,
    vis_dtype: VisDtype,
    overwrite: bool,
) -> Result<()> {
    let stage = ctx.progress.stage(format!("writing {}", dir.display()));
    write_bundle(
        dir,
        block,
        meta,
        WriteBundleOptions {
            vis_dtype,
            overwrite,
        },
    )?;
    stage.done();
    Ok(())
}
