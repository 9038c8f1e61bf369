//! Simulation: array layouts, earth-rotation uvw synthesis, sky models, exact DFT, noise, imaging advice.
//!
//! Everything is deterministic: random choices come from [`rng::Rng`] seeded by the caller
//! (or, for the built-in layouts, by a fixed internal seed).

pub mod advise;
pub mod detmath;
pub mod dft;
pub mod freq;
pub mod layout_csv;
pub(crate) mod layout_gen;
pub mod layout_low;
pub mod layout_mid;
pub mod noise;
pub mod rng;
pub mod scenario;
pub mod simulate;
pub mod sky;
pub mod uvw;

pub use advise::{
    AdviceParams, WideFieldAdvice, advise_for_block, advise_wide_field, good_fft_size,
    good_fft_size_235,
};
pub use dft::{invert_image, predict_components, predict_image};
pub use freq::FrequencySetup;
pub use layout_csv::config_from_csv;
pub use layout_low::{LOW_ANCHORS, LOW_STATION_DIAMETER, low_config, low_site};
pub use layout_mid::{MEERKAT_DISH_DIAMETER, MID_ANCHORS, SKA_DISH_DIAMETER, mid_config, mid_site};
pub use noise::{add_thermal_noise, radiometer_sigma};
pub use rng::Rng;
pub use simulate::simulate_block;
pub use sky::{PointSource, RandomSkySpec, SkyModel, random_sky_lm, random_sky_on_pixels};
pub use uvw::{BaselineRows, SIDEREAL_FACTOR, hour_angle_to_seconds, hour_angles, synthesize_uvw};

/// The option an [`ImagingError::InvalidParameter`] names, for tests that check which
/// field an error points at; any other outcome is shown as `{:?}` so the assertion fails.
///
/// [`ImagingError::InvalidParameter`]: crate::ImagingError::InvalidParameter
#[cfg(test)]
pub(crate) fn invalid_name<T: std::fmt::Debug>(r: Result<T, crate::ImagingError>) -> String {
    match r {
        Err(crate::ImagingError::InvalidParameter { name, .. }) => name,
        other => format!("not an InvalidParameter: {other:?}"),
    }
}
