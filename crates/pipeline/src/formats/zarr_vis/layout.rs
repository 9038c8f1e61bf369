//! The arrays of a dataset: names, dimension names, shapes, chunks, data types, fill
//! values and codecs, as zarrs `ArrayBuilder`s built from the metadata.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use zarrs::array::codec::{BytesCodec, Crc32cCodec, ZstdCodec};
use zarrs::array::{ArrayBuilder, DataType, Endianness, FillValueMetadata, data_type};

use super::meta::VisDatasetMeta;
use crate::formats::bundle::VisDtype;

/// Array names (keys under the dataset prefix). The data and `UVW` follow xradio's MSv4
/// names; coordinates are named after their dimension so xarray indexes by them.
pub mod names {
    pub const VISIBILITY: &str = "VISIBILITY";
    pub const WEIGHT: &str = "WEIGHT";
    pub const FLAG: &str = "FLAG";
    pub const UVW: &str = "UVW";
    pub const TIME: &str = "time";
    pub const BASELINE_ID: &str = "baseline_id";
    pub const ANTENNA1: &str = "baseline_antenna1_id";
    pub const ANTENNA2: &str = "baseline_antenna2_id";
    pub const FREQUENCY: &str = "frequency";
    pub const POLARIZATION: &str = "polarization";
    pub const UVW_LABEL: &str = "uvw_label";
    /// Chunk `w` is 1 once window `w` is completely written.
    pub const WINDOW_COMPLETE: &str = "window_complete";
    /// Every array of the layout.
    pub const ALL: [&str; 12] = [
        VISIBILITY,
        WEIGHT,
        FLAG,
        UVW,
        TIME,
        BASELINE_ID,
        ANTENNA1,
        ANTENNA2,
        FREQUENCY,
        POLARIZATION,
        UVW_LABEL,
        WINDOW_COMPLETE,
    ];
}

/// Dimension names (xradio MSv4).
pub(crate) mod dims {
    pub const TIME: &str = "time";
    pub const BASELINE: &str = "baseline_id";
    pub const FREQUENCY: &str = "frequency";
    pub const POLARIZATION: &str = "polarization";
    pub const UVW_LABEL: &str = "uvw_label";
    pub const WINDOW: &str = "frequency_window";
}

/// The CF `coordinates` attribute of the data arrays: xarray then shows the antenna ids
/// as (non-dimension) coordinates of `baseline_id`, as xradio does.
const BASELINE_COORDS: &str = "baseline_antenna1_id baseline_antenna2_id";

/// The polarization products stored: Stokes I only.
pub(crate) const POLARIZATIONS: [&str; 1] = ["I"];
pub(crate) const UVW_LABELS: [&str; 3] = ["u", "v", "w"];

/// Stored types of the visibilities and weights.
pub(crate) fn vis_types(dtype: VisDtype) -> (DataType, DataType) {
    match dtype {
        VisDtype::Complex64 => (data_type::complex64(), data_type::float32()),
        VisDtype::Complex128 => (data_type::complex128(), data_type::float64()),
    }
}

fn fill(v: Value) -> FillValueMetadata {
    // The JSON forms of the Zarr v3 spec; all valid for their data types.
    serde_json::from_value(v).expect("a valid fill value literal")
}

/// Dimension names, attributes and codecs shared by the builders.
fn builder(
    shape: Vec<u64>,
    chunk: Vec<u64>,
    dtype: DataType,
    fill_value: Value,
    dims: &[&str],
    attrs: Value,
    codecs: Codecs,
) -> ArrayBuilder {
    let mut b = ArrayBuilder::new(shape, chunk.as_slice(), dtype.clone(), fill(fill_value));
    b.dimension_names(Some(dims.iter().copied()));
    if let Value::Object(m) = attrs {
        b.attributes(m);
    } else {
        b.attributes(Map::new());
    }
    let multi_byte = dtype.fixed_size().is_some_and(|s| s > 1);
    if multi_byte {
        b.array_to_bytes_codec(Arc::new(BytesCodec::new(Some(Endianness::Little))));
    }
    match codecs {
        Codecs::Plain => {}
        Codecs::Checksum => {
            b.bytes_to_bytes_codecs(vec![Arc::new(Crc32cCodec::new())]);
        }
        Codecs::CompressedChecksum => {
            b.bytes_to_bytes_codecs(vec![
                Arc::new(ZstdCodec::new(ZSTD_LEVEL, false)),
                Arc::new(Crc32cCodec::new()),
            ]);
        }
    }
    b
}

/// zstd level for weights and flags: fast, and these compress well (often constant).
const ZSTD_LEVEL: i32 = 1;

#[derive(Debug, Clone, Copy)]
enum Codecs {
    /// The bytes codec only (small coordinate arrays).
    Plain,
    /// crc32c over the bytes: corruption is detected.
    Checksum,
    /// zstd, then crc32c.
    CompressedChecksum,
}

/// Every array of the dataset described by `meta`, by name.
pub(crate) fn builders(meta: &VisDatasetMeta) -> Vec<(&'static str, ArrayBuilder)> {
    let (nt, nbl, nchan, nw) = (
        meta.ntime as u64,
        meta.nbaseline as u64,
        meta.nchan() as u64,
        meta.nwindows() as u64,
    );
    let (tc, wc) = (meta.time_chunk as u64, meta.nchan_window() as u64);
    let npol = POLARIZATIONS.len() as u64;
    let (vis_t, weight_t) = vis_types(meta.vis_dtype);
    let data_dims = [
        dims::TIME,
        dims::BASELINE,
        dims::FREQUENCY,
        dims::POLARIZATION,
    ];
    let data_shape = vec![nt, nbl, nchan, npol];
    let data_chunk = vec![tc, nbl, wc, npol];
    vec![
        (
            names::VISIBILITY,
            builder(
                data_shape.clone(),
                data_chunk.clone(),
                vis_t,
                json!([0.0, 0.0]),
                &data_dims,
                json!({"units": "Jy", "description": "complex visibility, Stokes I", "coordinates": BASELINE_COORDS}),
                Codecs::Checksum,
            ),
        ),
        (
            names::WEIGHT,
            builder(
                data_shape.clone(),
                data_chunk.clone(),
                weight_t,
                json!(0.0),
                &data_dims,
                json!({"description": "visibility weight (inverse variance, relative)", "coordinates": BASELINE_COORDS}),
                Codecs::CompressedChecksum,
            ),
        ),
        (
            names::FLAG,
            builder(
                data_shape,
                data_chunk,
                data_type::bool(),
                json!(true),
                &data_dims,
                json!({"description": "true where a sample is flagged (excluded)", "coordinates": BASELINE_COORDS}),
                Codecs::CompressedChecksum,
            ),
        ),
        (
            names::UVW,
            builder(
                vec![nt, nbl, 3],
                vec![tc, nbl, 3],
                data_type::float64(),
                json!(0.0),
                &[dims::TIME, dims::BASELINE, dims::UVW_LABEL],
                json!({"units": "m", "description": "baseline uvw: antenna2 - antenna1", "coordinates": BASELINE_COORDS}),
                Codecs::Checksum,
            ),
        ),
        (
            names::TIME,
            builder(
                vec![nt],
                vec![tc],
                data_type::float64(),
                json!(0.0),
                &[dims::TIME],
                json!({"units": "s", "description": "integration time centre"}),
                Codecs::Plain,
            ),
        ),
        (
            names::BASELINE_ID,
            builder(
                vec![nbl],
                vec![nbl],
                data_type::int32(),
                json!(0),
                &[dims::BASELINE],
                json!({}),
                Codecs::Plain,
            ),
        ),
        (
            names::ANTENNA1,
            builder(
                vec![nbl],
                vec![nbl],
                data_type::int32(),
                json!(0),
                &[dims::BASELINE],
                json!({"description": "first antenna of the baseline"}),
                Codecs::Plain,
            ),
        ),
        (
            names::ANTENNA2,
            builder(
                vec![nbl],
                vec![nbl],
                data_type::int32(),
                json!(0),
                &[dims::BASELINE],
                json!({"description": "second antenna of the baseline"}),
                Codecs::Plain,
            ),
        ),
        (
            names::FREQUENCY,
            builder(
                vec![nchan],
                vec![wc],
                data_type::float64(),
                json!(0.0),
                &[dims::FREQUENCY],
                json!({"units": "Hz", "description": "channel centre frequency"}),
                Codecs::Plain,
            ),
        ),
        (
            names::POLARIZATION,
            builder(
                vec![npol],
                vec![npol],
                data_type::string(),
                json!(""),
                &[dims::POLARIZATION],
                json!({}),
                Codecs::Plain,
            ),
        ),
        (
            names::UVW_LABEL,
            builder(
                vec![3],
                vec![3],
                data_type::string(),
                json!(""),
                &[dims::UVW_LABEL],
                json!({}),
                Codecs::Plain,
            ),
        ),
        (
            names::WINDOW_COMPLETE,
            builder(
                vec![nw],
                vec![1],
                data_type::uint8(),
                json!(0),
                &[dims::WINDOW],
                json!({"description": "1 once the frequency window is completely written"}),
                Codecs::Plain,
            ),
        ),
    ]
}
