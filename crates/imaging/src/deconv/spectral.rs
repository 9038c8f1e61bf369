//! Spectral-index map from Taylor-term model images.

use ndarray::Array2;

use super::validate::check_image;
use crate::ImagingError;
use crate::image::Image;

/// α = I₁/I₀ per pixel where |I₀| > `threshold_jy` (Jy/pixel), 0 elsewhere (also where
/// the ratio would not be finite), from Taylor terms about ν₀ with
/// I(ν) = Σ_t I_t ((ν − ν₀)/ν₀)^t (Rau & Cornwell 2011, eq. 2, to first order). The
/// result has the geometry of `model_taylor[0]`.
pub fn spectral_index(model_taylor: &[Image], threshold_jy: f64) -> Result<Image, ImagingError> {
    if model_taylor.len() < 2 {
        return Err(ImagingError::invalid(
            "model_taylor",
            format!(
                "{} Taylor term(s); a spectral index needs at least 2",
                model_taylor.len()
            ),
        ));
    }
    if !(threshold_jy.is_finite() && threshold_jy >= 0.0) {
        return Err(ImagingError::invalid(
            "threshold_jy",
            format!("{threshold_jy}; must be finite and non-negative"),
        ));
    }
    let (i0, i1) = (&model_taylor[0], &model_taylor[1]);
    check_image(i0, "model_taylor[0]")?;
    check_image(i1, "model_taylor[1]")?;
    if i0.data_yx.dim() != i1.data_yx.dim() {
        let (a, b) = (i0.data_yx.dim(), i1.data_yx.dim());
        return Err(ImagingError::ShapeMismatch {
            name: "model_taylor[1]".into(),
            expected: format!("[{}, {}]", a.0, a.1),
            got: format!("[{}, {}]", b.0, b.1),
        });
    }
    let mut alpha = Array2::zeros(i0.data_yx.dim());
    ndarray::Zip::from(&mut alpha)
        .and(&i0.data_yx)
        .and(&i1.data_yx)
        .for_each(|a, &t0, &t1| {
            if t0.abs() > threshold_jy {
                let r = t1 / t0;
                if r.is_finite() {
                    *a = r;
                }
            }
        });
    Ok(Image {
        geom: i0.geom,
        data_yx: alpha,
    })
}
