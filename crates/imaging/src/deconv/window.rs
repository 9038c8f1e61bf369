//! Clean windows: where components may be placed.

use ndarray::Array2;

use super::params::CleanWindow;
use crate::ImagingError;

/// The window as a `[y, x]` mask, `true` where components are allowed.
///
/// - [`CleanWindow::All`]: every pixel.
/// - [`CleanWindow::Quarter`]: the central quarter of the area, x in
///   [npix_x/4, npix_x/4 + npix_x/2) and likewise in y (RASCIL's `window_shape="quarter"`).
/// - [`CleanWindow::NoEdge`]`(n)`: all but a border of n pixels on each side (RASCIL's
///   `no_edge` with `window_edge = n`).
/// - [`CleanWindow::Mask`]: the given mask, which must be `[npix_y, npix_x]`.
///
/// An empty window is an error naming `window`.
pub fn window_mask(
    window: &CleanWindow,
    npix_x: usize,
    npix_y: usize,
) -> Result<Array2<bool>, ImagingError> {
    if npix_x == 0 || npix_y == 0 {
        return Err(ImagingError::invalid(
            "window",
            format!("the image has {npix_x} x {npix_y} pixels"),
        ));
    }
    let boxed = |x0: usize, x1: usize, y0: usize, y1: usize| {
        Array2::from_shape_fn((npix_y, npix_x), |(y, x)| {
            (x0..x1).contains(&x) && (y0..y1).contains(&y)
        })
    };
    let mask = match window {
        CleanWindow::All => Array2::from_elem((npix_y, npix_x), true),
        CleanWindow::Quarter => boxed(
            npix_x / 4,
            npix_x / 4 + npix_x / 2,
            npix_y / 4,
            npix_y / 4 + npix_y / 2,
        ),
        CleanWindow::NoEdge(n) => {
            let n = *n;
            if 2 * n >= npix_x || 2 * n >= npix_y {
                return Err(ImagingError::invalid(
                    "window",
                    format!(
                        "a no-edge border of {n} pixels leaves nothing of a {npix_x} x {npix_y} image"
                    ),
                ));
            }
            boxed(n, npix_x - n, n, npix_y - n)
        }
        CleanWindow::Mask(m) => {
            if m.dim() != (npix_y, npix_x) {
                return Err(ImagingError::ShapeMismatch {
                    name: "window".into(),
                    expected: format!("[{npix_y}, {npix_x}]"),
                    got: format!("[{}, {}]", m.dim().0, m.dim().1),
                });
            }
            m.clone()
        }
    };
    if !mask.iter().any(|&b| b) {
        return Err(ImagingError::invalid(
            "window",
            "the clean window is empty (no pixel allows components)",
        ));
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_the_windows() {
        let all = window_mask(&CleanWindow::All, 16, 8).unwrap();
        assert_eq!(all.dim(), (8, 16));
        assert!(all.iter().all(|&b| b));
        let q = window_mask(&CleanWindow::Quarter, 16, 8).unwrap();
        assert_eq!(q.iter().filter(|&&b| b).count(), 8 * 4);
        assert!(q[[2, 4]] && q[[5, 11]] && !q[[1, 4]] && !q[[2, 12]]);
        let e = window_mask(&CleanWindow::NoEdge(2), 16, 8).unwrap();
        assert_eq!(e.iter().filter(|&&b| b).count(), 12 * 4);
        assert!(e[[2, 2]] && !e[[1, 2]] && !e[[2, 14]]);
    }

    #[test]
    fn empty_or_misshapen_windows_are_errors() {
        let name = |r: Result<Array2<bool>, ImagingError>| match r {
            Err(ImagingError::InvalidParameter { name, .. })
            | Err(ImagingError::ShapeMismatch { name, .. }) => name,
            other => format!("{other:?}"),
        };
        assert_eq!(name(window_mask(&CleanWindow::NoEdge(4), 8, 8)), "window");
        let m = Array2::from_elem((8, 8), false);
        assert_eq!(name(window_mask(&CleanWindow::Mask(m), 8, 8)), "window");
        let m = Array2::from_elem((8, 9), true);
        assert_eq!(name(window_mask(&CleanWindow::Mask(m), 8, 8)), "window");
    }
}
