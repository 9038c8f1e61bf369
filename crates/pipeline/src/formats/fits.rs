//! FITS images with a full celestial WCS: writer and reader (no C dependency).
//!
//! Files follow the FITS Standard 4.0 (IAU FITS Working Group, 2016): one primary HDU of 80-character cards in 2880-byte blocks padded with spaces,
//! then big-endian IEEE pixels (BITPIX −32 or −64) padded with zeros. Images are written
//! with NAXIS = 4 (RA, DEC, FREQ, STOKES; the last two of length 1, as radio imagers
//! write) and the WCS of DESIGN.md: `RA---SIN`/`DEC--SIN`, `CDELT1 = −cell`,
//! `CDELT2 = +cell`, `CRPIX = npix/2 + 1` (Greisen & Calabretta 2002; Calabretta &
//! Greisen 2002 §5.1.5 for SIN). Axis 1 (x) varies fastest, so `data_yx` row y = 0 is
//! written first.
//!
//! A zero bandwidth is written as `CDELT3 = 1` Hz, since a coordinate increment must
//! not be zero (Greisen & Calabretta 2002 §2.1.2), and so reads back as 1 Hz.
//!
//! The reader takes back what the writer writes and typical 2-D/3-D/4-D images from
//! other tools (BITPIX 8/16/32/64/−32/−64 with BSCALE/BZERO, degenerate extra axes), and
//! rejects what aperture cannot represent without resampling.

mod card;
mod header;
mod read;
mod wcs;
mod write;

use serde::{Deserialize, Serialize};

pub use card::{Card, CardValue};
pub use header::FitsHeader;
pub use read::read_fits_image;
pub use write::{encode_fits_image, write_fits_image};

/// FITS logical record (block) length in bytes (FITS 4.0 §3.1).
pub const BLOCK_LEN: usize = 2880;

/// Pixel type of a written image (FITS 4.0 §4.4.1.1, table 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Bitpix {
    /// IEEE 754 single precision (`BITPIX = −32`), the usual choice for products.
    #[default]
    F32,
    /// IEEE 754 double precision (`BITPIX = −64`), lossless for `f64` images.
    F64,
}

impl Bitpix {
    /// The `BITPIX` keyword value.
    pub fn value(self) -> i64 {
        match self {
            Self::F32 => -32,
            Self::F64 => -64,
        }
    }

    /// Bytes per pixel.
    pub(crate) fn bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

/// A restoring beam: full widths at half maximum and position angle (east of north), in
/// degrees, as the `BMAJ`, `BMIN`, `BPA` keywords hold them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RestoringBeam {
    pub bmaj_deg: f64,
    pub bmin_deg: f64,
    pub bpa_deg: f64,
}

/// What to write besides the pixels and the WCS.
#[derive(Debug, Clone, PartialEq)]
pub struct FitsWriteOptions {
    pub bitpix: Bitpix,
    /// `BUNIT`, e.g. `JY/BEAM` (restored and dirty images) or `JY/PIXEL` (models).
    pub bunit: String,
    /// `OBJECT`, the target name.
    pub object: Option<String>,
    /// `TELESCOP`, the telescope name.
    pub telescope: Option<String>,
    /// `DATE`, the file creation date (`YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ss[.s…]`,
    /// FITS 4.0 §4.4.2.1); omitted when `None`.
    pub date: Option<String>,
    /// The restoring beam (`BMAJ`, `BMIN`, `BPA`) of restored images.
    pub beam: Option<RestoringBeam>,
    /// Further cards, e.g. `EPSILON`, `NVIS`, `WEIGHTING` or `HISTORY` lines. Keywords the
    /// writer owns (structure, WCS, the options above) are rejected.
    pub extra: Vec<Card>,
}

impl Default for FitsWriteOptions {
    fn default() -> Self {
        Self {
            bitpix: Bitpix::default(),
            bunit: "JY/BEAM".to_owned(),
            object: None,
            telescope: None,
            date: None,
            beam: None,
            extra: Vec::new(),
        }
    }
}
