//! The internal format of partial results (per-shard sums and reduction-tree nodes):
//! named f64 images, named scalars and optional calibration normal equations, which add
//! element-wise. Layout: `APERTURE-PARTIAL1\n`, a u64 (LE) header length, the JSON
//! header, then each array's f64 values little-endian in header order.

use std::collections::BTreeMap;

use aperture_imaging::calib::NormalEquations;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::TaskError;

const MAGIC: &[u8] = b"APERTURE-PARTIAL1\n";

/// Largest byte range [`Partial::read_ranged`] asks for at once.
pub const READ_PIECE: usize = 8 * 1024 * 1024;

/// A summable partial result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partial {
    pub arrays: BTreeMap<String, Array2<f64>>,
    pub scalars: BTreeMap<String, f64>,
    /// Calibration normal equations (global T solutions), summed by the tree.
    pub neq: Option<NormalEquations>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    arrays: Vec<(String, [usize; 2])>,
    scalars: BTreeMap<String, f64>,
    neq: Option<NormalEquations>,
}

impl Partial {
    /// Adds `other` element-wise; shapes and names must agree.
    pub fn add(&mut self, other: &Partial, what: &str) -> Result<(), TaskError> {
        if self.arrays.is_empty() && self.scalars.is_empty() && self.neq.is_none() {
            *self = other.clone();
            return Ok(());
        }
        let names = |p: &Partial| p.arrays.keys().cloned().collect::<Vec<_>>();
        if names(self) != names(other) {
            return Err(TaskError::corrupt(
                what,
                format!(
                    "partials hold different images: {:?} vs {:?}",
                    names(self),
                    names(other)
                ),
            ));
        }
        for (k, a) in &mut self.arrays {
            let b = &other.arrays[k];
            if a.dim() != b.dim() {
                return Err(TaskError::corrupt(
                    what,
                    format!(
                        "image {k} is {:?} in one partial and {:?} in another",
                        a.dim(),
                        b.dim()
                    ),
                ));
            }
            *a += b;
        }
        for (k, v) in &other.scalars {
            *self.scalars.entry(k.clone()).or_default() += v;
        }
        match (&mut self.neq, &other.neq) {
            (Some(a), Some(b)) => a
                .add(b)
                .map_err(|e| TaskError::corrupt(what, format!("normal equations: {e}")))?,
            (None, Some(b)) => self.neq = Some(b.clone()),
            _ => {}
        }
        Ok(())
    }

    /// The images of this partial as [`PartImage`]s (scale 1), in name order.
    pub fn images(&self) -> Vec<PartImage<'_>> {
        self.arrays
            .iter()
            .map(|(name, data)| PartImage {
                name,
                data,
                scale: 1.0,
            })
            .collect()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let images = self.images();
        let enc = PartEncoder::new(&images, &self.scalars, self.neq.as_ref(), usize::MAX);
        let mut out = Vec::with_capacity(enc.total_len());
        for chunk in enc {
            out.extend_from_slice(&chunk);
        }
        out
    }

    /// Parses bytes written by [`Partial::to_bytes`]; `key` names the object in errors.
    pub fn from_bytes(bytes: &[u8], key: &str) -> Result<Self, TaskError> {
        let bad = |why: &str| TaskError::corrupt(key, why.to_string());
        if !bytes.starts_with(MAGIC) {
            return Err(bad("not an aperture partial (bad magic)"));
        }
        let rest = &bytes[MAGIC.len()..];
        if rest.len() < 8 {
            return Err(bad("truncated header"));
        }
        let hlen =
            u64::from_le_bytes(rest[..8].try_into().map_err(|_| bad("header length"))?) as usize;
        let rest = &rest[8..];
        if rest.len() < hlen {
            return Err(bad("truncated header"));
        }
        let header: Header =
            serde_json::from_slice(&rest[..hlen]).map_err(|e| bad(&format!("bad header: {e}")))?;
        let mut data = &rest[hlen..];
        let mut arrays = BTreeMap::new();
        for (name, [ny, nx]) in header.arrays {
            let n = ny.checked_mul(nx).ok_or_else(|| bad("array too large"))?;
            if data.len() < 8 * n {
                return Err(bad(&format!("truncated data of image {name}")));
            }
            let vals: Vec<f64> = data[..8 * n]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            data = &data[8 * n..];
            let a = Array2::from_shape_vec((ny, nx), vals).map_err(|_| bad("array shape"))?;
            arrays.insert(name, a);
        }
        if !data.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            arrays,
            scalars: header.scalars,
            neq: header.neq,
        })
    }

    /// Parses a partial read in pieces: `read(range)` gives those bytes of the object
    /// of `len` bytes. The header is read first, then each image in ranges of at most
    /// [`READ_PIECE`] bytes decoded straight into its array, so a reader holds the
    /// images and one piece, not the whole object nor a byte copy of an image.
    pub async fn read_ranged<F, Fut>(len: u64, key: &str, read: F) -> Result<Self, TaskError>
    where
        F: FnMut(std::ops::Range<u64>) -> Fut,
        Fut: std::future::Future<Output = Result<bytes::Bytes, TaskError>>,
    {
        Self::read_ranged_in(len, key, READ_PIECE, read).await
    }

    /// [`Partial::read_ranged`] with ranges of at most `piece` bytes (rounded down to
    /// whole f64 values, at least one).
    pub async fn read_ranged_in<F, Fut>(
        len: u64,
        key: &str,
        piece: usize,
        mut read: F,
    ) -> Result<Self, TaskError>
    where
        F: FnMut(std::ops::Range<u64>) -> Fut,
        Fut: std::future::Future<Output = Result<bytes::Bytes, TaskError>>,
    {
        let piece = (piece / 8).max(1) as u64 * 8;
        let bad = |why: &str| TaskError::corrupt(key, why.to_string());
        let (header, mut at) = read_header_ranged(len, key, &mut read).await?;
        let mut arrays = BTreeMap::new();
        for (name, [ny, nx]) in header.arrays {
            let n = ny
                .checked_mul(nx)
                .and_then(|n| n.checked_mul(8))
                .ok_or_else(|| bad("array too large"))? as u64;
            if at + n > len {
                return Err(bad(&format!("truncated data of image {name}")));
            }
            let end = at + n;
            let mut vals: Vec<f64> = Vec::with_capacity(ny * nx);
            while at < end {
                let to = (at + piece).min(end);
                let data = read(at..to).await?;
                if data.len() as u64 != to - at {
                    return Err(bad(&format!("short read of image {name}")));
                }
                vals.extend(
                    data.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
                );
                at = to;
            }
            let a = Array2::from_shape_vec((ny, nx), vals).map_err(|_| bad("array shape"))?;
            arrays.insert(name, a);
        }
        if at != len {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            arrays,
            scalars: header.scalars,
            neq: header.neq,
        })
    }

    /// Σ scale · image over the named `terms` of the partial of `len` bytes, read in
    /// ranges of at most `piece` bytes and added straight into one image: a reader holds
    /// the sum and one piece, not the terms (a model at frequency x is Σ_t x^t m_t, Rau &
    /// Cornwell 2011 eq. 10). Images not named are skipped unread; a named image that is
    /// missing, or of another shape than the first, is an error naming `key`.
    pub async fn read_sum_ranged<F, Fut>(
        len: u64,
        key: &str,
        terms: &[(String, f64)],
        piece: usize,
        read: F,
    ) -> Result<Array2<f64>, TaskError>
    where
        F: FnMut(std::ops::Range<u64>) -> Fut,
        Fut: std::future::Future<Output = Result<bytes::Bytes, TaskError>>,
    {
        let names: Vec<&str> = terms.iter().map(|(t, _)| t.as_str()).collect();
        let mut out: Option<Array2<f64>> = None;
        let shape = visit_named_ranged(len, key, &names, piece, read, |k, shape, first, values| {
            let acc = out.get_or_insert_with(|| Array2::zeros(shape));
            let Some(flat) = acc.as_slice_mut() else {
                return false;
            };
            let scale = terms[k].1;
            for (o, c) in flat[first..].iter_mut().zip(values.chunks_exact(8)) {
                *o += scale * f64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            }
            true
        })
        .await?;
        // Stopped only when the sum image is not contiguous (never, as made here).
        let shape = shape.ok_or_else(|| TaskError::corrupt(key, "sum image not contiguous"))?;
        Ok(out.unwrap_or_else(|| Array2::zeros(shape)))
    }

    /// The non-zero pixels of the named `names` of the partial of `len` bytes, read
    /// once in ranges of at most `piece` bytes: per name (in `names`' order) the flat
    /// `[y, x]` indices and values of its non-zero pixels, and the images' shape. A CLEAN
    /// model is mostly zeros, so its Taylor terms are held in a few MB instead of an
    /// image each; `None` once they have more than `max_nonzero` non-zero pixels in all
    /// (the caller then reads them as images). Errors as [`Partial::read_sum_ranged`].
    pub async fn read_nonzero_ranged<F, Fut>(
        len: u64,
        key: &str,
        names: &[String],
        piece: usize,
        max_nonzero: usize,
        read: F,
    ) -> Result<Option<NonZeroTerms>, TaskError>
    where
        F: FnMut(std::ops::Range<u64>) -> Fut,
        Fut: std::future::Future<Output = Result<bytes::Bytes, TaskError>>,
    {
        let named: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut terms: Vec<(Vec<u32>, Vec<f64>)> = vec![Default::default(); names.len()];
        let mut held = 0usize;
        let shape = visit_named_ranged(len, key, &named, piece, read, |k, shape, first, values| {
            // Flat indices are held as u32.
            if u32::try_from(shape.0 * shape.1).is_err() {
                return false;
            }
            let (idx, val) = &mut terms[k];
            for (i, c) in (first..).zip(values.chunks_exact(8)) {
                let v = f64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
                if v != 0.0 {
                    if held == max_nonzero {
                        return false;
                    }
                    held += 1;
                    idx.push(i as u32);
                    val.push(v);
                }
            }
            true
        })
        .await?;
        Ok(shape.map(|shape| NonZeroTerms { shape, terms }))
    }

    pub fn array(&self, name: &str, key: &str) -> Result<&Array2<f64>, TaskError> {
        self.arrays
            .get(name)
            .ok_or_else(|| TaskError::corrupt(key, format!("has no image {name:?}")))
    }

    pub fn scalar(&self, name: &str, key: &str) -> Result<f64, TaskError> {
        self.scalars
            .get(name)
            .copied()
            .ok_or_else(|| TaskError::corrupt(key, format!("has no value {name:?}")))
    }
}

/// Images held as their non-zero pixels ([`Partial::read_nonzero_ranged`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NonZeroTerms {
    /// `(ny, nx)` of every image.
    pub shape: (usize, usize),
    /// Per image, the flat `[y, x]` indices of its non-zero pixels and their values.
    pub terms: Vec<(Vec<u32>, Vec<f64>)>,
}

impl NonZeroTerms {
    /// Σ_k scale_k · image_k, made as [`Partial::read_sum_ranged`] adds them (each scaled
    /// pixel added to a zeroed image, term by term: the same bits when the terms come in
    /// the partial's order). The image is allocated zeroed, so only the pages holding
    /// non-zero pixels become resident.
    pub fn sum(&self, scales: &[f64]) -> Array2<f64> {
        let mut out = Array2::<f64>::zeros(self.shape);
        if let Some(flat) = out.as_slice_mut() {
            for ((idx, val), scale) in self.terms.iter().zip(scales) {
                for (&i, &v) in idx.iter().zip(val) {
                    flat[i as usize] += scale * v;
                }
            }
        }
        out
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.terms.iter().map(|(i, _)| i.len() * 12).sum()
    }
}

/// One image of a partial being written: `scale` × `data`, under `name`. A writer can
/// store a Taylor moment x^t · D of one window without making the product.
#[derive(Debug, Clone, Copy)]
pub struct PartImage<'a> {
    pub name: &'a str,
    pub data: &'a Array2<f64>,
    pub scale: f64,
}

/// The header of a partial whose images, in this order, have these names and shapes.
pub fn encode_header(
    arrays: &[(String, [usize; 2])],
    scalars: &BTreeMap<String, f64>,
    neq: Option<&NormalEquations>,
) -> Vec<u8> {
    let header = Header {
        arrays: arrays.to_vec(),
        scalars: scalars.clone(),
        neq: neq.cloned(),
    };
    let json = serde_json::to_vec(&header).unwrap_or_default();
    let mut head = Vec::with_capacity(MAGIC.len() + 8 + json.len());
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&(json.len() as u64).to_le_bytes());
    head.extend_from_slice(&json);
    head
}

/// The bytes of a partial, the same as [`Partial::to_bytes`] of the materialised images,
/// made lazily in chunks of `chunk` bytes (the last one shorter): a writer holds one
/// chunk at a time, not a second copy of every image.
#[derive(Debug)]
pub struct PartEncoder<'a> {
    images: &'a [PartImage<'a>],
    head: Vec<u8>,
    chunk: usize,
    /// Position: the header is done once `head` is empty; then image `img`, element `at`.
    img: usize,
    at: usize,
    total: usize,
}

impl<'a> PartEncoder<'a> {
    pub fn new(
        images: &'a [PartImage<'a>],
        scalars: &BTreeMap<String, f64>,
        neq: Option<&NormalEquations>,
        chunk: usize,
    ) -> Self {
        let shapes: Vec<(String, [usize; 2])> = images
            .iter()
            .map(|i| (i.name.to_string(), [i.data.nrows(), i.data.ncols()]))
            .collect();
        let head = encode_header(&shapes, scalars, neq);
        let n: usize = images.iter().map(|i| i.data.len()).sum();
        Self {
            images,
            total: head.len() + 8 * n,
            head,
            chunk: chunk.max(8),
            img: 0,
            at: 0,
        }
    }

    /// The images' bytes alone, for a writer that sent the header first
    /// ([`encode_header`]).
    pub fn body(images: &'a [PartImage<'a>], chunk: usize) -> Self {
        let n: usize = images.iter().map(|i| i.data.len()).sum();
        Self {
            images,
            head: Vec::new(),
            chunk: chunk.max(8),
            img: 0,
            at: 0,
            total: 8 * n,
        }
    }

    /// Bytes of the whole partial.
    pub fn total_len(&self) -> usize {
        self.total
    }
}

impl Iterator for PartEncoder<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let mut out = std::mem::take(&mut self.head);
        if out.len() >= self.chunk {
            self.head = out.split_off(self.chunk);
            return Some(out);
        }
        out.reserve(self.chunk.min(self.total).saturating_sub(out.len()));
        while out.len() + 8 <= self.chunk {
            let Some(im) = self.images.get(self.img) else {
                break;
            };
            let take = ((self.chunk - out.len()) / 8).min(im.data.len() - self.at);
            // Logical (row-major) order, whatever the array's memory layout.
            for v in im.data.iter().skip(self.at).take(take) {
                out.extend_from_slice(&(v * im.scale).to_le_bytes());
            }
            self.at += take;
            if self.at == im.data.len() {
                self.img += 1;
                self.at = 0;
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// Streams the images of the partial of `len` bytes named in `names` (the others are
/// skipped unread) in ranges of at most `piece` bytes: `visit(k, shape, first, values)`
/// gets the image's index in `names`, its `(ny, nx)`, the flat `[y, x]` index of the
/// piece's first value and the piece's little-endian f64 values, and returns false to
/// stop (then `Ok(None)`). `Ok(Some(shape))` once every named image was visited. A
/// truncated object, a named image missing or of another shape than the first is an
/// error naming `key`.
async fn visit_named_ranged<F, Fut>(
    len: u64,
    key: &str,
    names: &[&str],
    piece: usize,
    mut read: F,
    mut visit: impl FnMut(usize, (usize, usize), usize, &[u8]) -> bool,
) -> Result<Option<(usize, usize)>, TaskError>
where
    F: FnMut(std::ops::Range<u64>) -> Fut,
    Fut: std::future::Future<Output = Result<bytes::Bytes, TaskError>>,
{
    let piece = (piece / 8).max(1) as u64 * 8;
    let bad = |why: &str| TaskError::corrupt(key, why.to_string());
    let (header, mut at) = read_header_ranged(len, key, &mut read).await?;
    let mut shape: Option<(usize, usize)> = None;
    let mut found = 0usize;
    for (name, [ny, nx]) in header.arrays {
        let n = ny
            .checked_mul(nx)
            .and_then(|n| n.checked_mul(8))
            .ok_or_else(|| bad("array too large"))? as u64;
        let end = at.checked_add(n).filter(|e| *e <= len);
        let end = end.ok_or_else(|| bad(&format!("truncated data of image {name}")))?;
        let Some(k) = names.iter().position(|t| *t == name) else {
            at = end;
            continue;
        };
        found += 1;
        if *shape.get_or_insert((ny, nx)) != (ny, nx) {
            return Err(bad(&format!(
                "image {name} is {ny}×{nx}, the other terms {:?}",
                shape.unwrap_or_default()
            )));
        }
        let mut first = 0usize;
        while at < end {
            let to = (at + piece).min(end);
            let data = read(at..to).await?;
            if data.len() as u64 != to - at {
                return Err(bad(&format!("short read of image {name}")));
            }
            if !visit(k, (ny, nx), first, &data) {
                return Ok(None);
            }
            first += data.len() / 8;
            at = to;
        }
    }
    if found < names.len() {
        return Err(bad(&format!("lacks some of the images {names:?}")));
    }
    shape.map(Some).ok_or_else(|| bad("no images to sum"))
}

/// The header of a partial of `len` bytes read in pieces by `read`, and the offset of
/// its first image.
async fn read_header_ranged<F, Fut>(
    len: u64,
    key: &str,
    read: &mut F,
) -> Result<(Header, u64), TaskError>
where
    F: FnMut(std::ops::Range<u64>) -> Fut,
    Fut: std::future::Future<Output = Result<bytes::Bytes, TaskError>>,
{
    let bad = |why: &str| TaskError::corrupt(key, why.to_string());
    let lead = (MAGIC.len() + 8) as u64;
    if len < lead {
        return Err(bad("truncated header"));
    }
    let pre = read(0..lead).await?;
    if !pre.starts_with(MAGIC) {
        return Err(bad("not an aperture partial (bad magic)"));
    }
    let hlen = u64::from_le_bytes(
        pre[MAGIC.len()..]
            .try_into()
            .map_err(|_| bad("header length"))?,
    );
    let at = lead
        .checked_add(hlen)
        .filter(|e| *e <= len)
        .ok_or_else(|| bad("truncated header"))?;
    let hbytes = read(lead..at).await?;
    let header: Header =
        serde_json::from_slice(&hbytes).map_err(|e| bad(&format!("bad header: {e}")))?;
    Ok((header, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranged reads of `b` (an object store's `get_range` on an object held in memory).
    fn read(
        b: bytes::Bytes,
    ) -> impl FnMut(std::ops::Range<u64>) -> std::future::Ready<Result<bytes::Bytes, TaskError>>
    {
        move |r| std::future::ready(Ok(b.slice(r.start as usize..r.end as usize)))
    }

    #[test]
    fn round_trip_and_sum() {
        let mut a = Partial::default();
        a.arrays.insert("d0".into(), Array2::from_elem((3, 4), 1.5));
        a.scalars.insert("sumwt".into(), 2.0);
        let b = Partial::from_bytes(&a.to_bytes(), "k").expect("parses");
        assert_eq!(a, b);
        let mut s = a.clone();
        s.add(&b, "k").expect("adds");
        assert_eq!(s.arrays["d0"][[2, 3]], 3.0);
        assert_eq!(s.scalars["sumwt"], 4.0);
        let mut bytes = a.to_bytes();
        bytes.truncate(bytes.len() - 3);
        let err = Partial::from_bytes(&bytes, "cycles/000/partial/00001.bin").unwrap_err();
        assert!(
            err.to_string().contains("cycles/000/partial/00001.bin"),
            "{err}"
        );
    }

    /// Chunks of any size concatenate to the bytes of the materialised, scaled partial.
    #[test]
    fn chunks_equal_the_materialised_bytes() {
        let base = Array2::from_shape_fn((5, 7), |(y, x)| (y * 7 + x) as f64 - 3.25);
        let mut full = Partial::default();
        full.arrays.insert("d0".into(), base.clone());
        full.arrays.insert("d1".into(), base.mapv(|v| v * 0.125));
        full.arrays.insert("p0".into(), base.t().to_owned());
        full.scalars.insert("sumwt".into(), 9.0);
        let want = full.to_bytes();
        // Column-major memory: the bytes follow the logical order.
        let transposed = base.clone().reversed_axes();
        let images = [
            PartImage {
                name: "d0",
                data: &base,
                scale: 1.0,
            },
            PartImage {
                name: "d1",
                data: &base,
                scale: 0.125,
            },
            PartImage {
                name: "p0",
                data: &transposed,
                scale: 1.0,
            },
        ];
        for chunk in [8, 13, 64, 100, 1 << 20] {
            let enc = PartEncoder::new(&images, &full.scalars, None, chunk);
            assert_eq!(enc.total_len(), want.len());
            let parts: Vec<Vec<u8>> = enc.collect();
            assert!(
                parts.iter().all(|p| p.len() <= chunk.max(8)),
                "chunk {chunk}"
            );
            assert_eq!(parts.concat(), want, "chunk {chunk}");
        }
        let back = Partial::from_bytes(&want, "k").expect("parses");
        assert_eq!(back, full);
    }

    /// A ranged sum of named images equals Σ scale · image of the parsed partial (the
    /// oracle), skips the others, and names the object when an image is missing.
    #[test]
    fn ranged_sum_equals_the_scaled_sum() {
        let mut a = Partial::default();
        let m0 = Array2::from_shape_fn((3, 5), |(y, x)| (y * 5 + x) as f64 - 2.5);
        let m1 = Array2::from_shape_fn((3, 5), |(y, x)| ((y + 2 * x) as f64).sin());
        a.arrays.insert("m0".into(), m0.clone());
        a.arrays.insert("m1".into(), m1.clone());
        a.arrays
            .insert("junk".into(), Array2::from_elem((2, 2), 9.0));
        let bytes = bytes::Bytes::from(a.to_bytes());
        let len = bytes.len() as u64;
        let x = -0.137;
        let terms = vec![("m0".to_string(), 1.0), ("m1".to_string(), x)];
        let mut want = m0.clone();
        want.scaled_add(x, &m1);
        for piece in [8, 24, 40, 1 << 20] {
            let got = futures::executor::block_on(Partial::read_sum_ranged(
                len,
                "k",
                &terms,
                piece,
                read(bytes.clone()),
            ))
            .expect("sums");
            let err = (&got - &want).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(err < 1e-15, "piece {piece}: {err}");
        }
        let missing = vec![("m2".to_string(), 1.0)];
        let err = futures::executor::block_on(Partial::read_sum_ranged(
            len,
            "cycles/001/model.bin",
            &missing,
            64,
            read(bytes.clone()),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("cycles/001/model.bin"), "{err}");
    }

    /// The non-zero pixels of sparse images, read in pieces of any size, sum to the bits
    /// of the ranged dense sum (the oracle); more non-zero pixels than allowed give
    /// `None`, a missing image an error naming the object.
    #[test]
    fn nonzero_terms_sum_like_the_ranged_sum() {
        let mut a = Partial::default();
        let sparse = |k: usize| {
            Array2::from_shape_fn((4, 6), move |(y, x)| {
                if (y * 6 + x) % (3 + k) == 1 {
                    ((y + k * x) as f64).cos() - 0.3
                } else {
                    0.0
                }
            })
        };
        a.arrays.insert("model".into(), sparse(0));
        a.arrays.insert("model-tt1".into(), sparse(1));
        a.arrays
            .insert("psf".into(), Array2::from_elem((4, 6), 2.0));
        let nonzero = a.arrays["model"].iter().chain(a.arrays["model-tt1"].iter());
        let count = nonzero.filter(|v| **v != 0.0).count();
        let bytes = bytes::Bytes::from(a.to_bytes());
        let len = bytes.len() as u64;
        let names = vec!["model".to_string(), "model-tt1".to_string()];
        let x = 0.173;
        let terms = vec![(names[0].clone(), 1.0), (names[1].clone(), x)];
        let want = futures::executor::block_on(Partial::read_sum_ranged(
            len,
            "k",
            &terms,
            64,
            read(bytes.clone()),
        ))
        .expect("sums");
        for piece in [8, 40, 1 << 20] {
            let nz = futures::executor::block_on(Partial::read_nonzero_ranged(
                len,
                "k",
                &names,
                piece,
                count,
                read(bytes.clone()),
            ))
            .expect("reads")
            .expect("within the limit");
            assert_eq!(nz.bytes(), 12 * count);
            let got = nz.sum(&[1.0, x]);
            let same = got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.to_bits() == w.to_bits());
            assert!(same, "piece {piece}: {got:?} vs {want:?}");
        }
        let over = futures::executor::block_on(Partial::read_nonzero_ranged(
            len,
            "k",
            &names,
            64,
            count - 1,
            read(bytes.clone()),
        ))
        .expect("reads");
        assert!(over.is_none());
        let err = futures::executor::block_on(Partial::read_nonzero_ranged(
            len,
            "cycles/001/model.bin",
            &["model-tt2".to_string()],
            64,
            count,
            read(bytes.clone()),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("cycles/001/model.bin"), "{err}");
    }

    /// Ranged reads give the partial `from_bytes` gives, and name the object when cut.
    #[test]
    fn ranged_read_equals_whole_read() {
        let mut a = Partial::default();
        a.arrays.insert("d0".into(), Array2::from_elem((3, 4), 1.5));
        a.arrays.insert(
            "p0".into(),
            Array2::from_shape_fn((2, 5), |(y, x)| (y + x) as f64),
        );
        a.scalars.insert("sumwt".into(), 2.0);
        let bytes = bytes::Bytes::from(a.to_bytes());
        let len = bytes.len() as u64;
        let got = futures::executor::block_on(Partial::read_ranged(len, "k", read(bytes.clone())))
            .expect("parses");
        assert_eq!(got, a);
        // Images read in pieces of a few values (not a multiple of any image's size):
        // the same partial, no range longer than the piece past the header.
        for piece in [8, 20, 24, 1000] {
            let asked = std::cell::RefCell::new(Vec::new());
            let b = bytes.clone();
            let rec = |r: std::ops::Range<u64>| {
                asked.borrow_mut().push(r.clone());
                let b = b.clone();
                async move { Ok::<_, TaskError>(b.slice(r.start as usize..r.end as usize)) }
            };
            let got = futures::executor::block_on(Partial::read_ranged_in(len, "k", piece, rec))
                .expect("parses");
            assert_eq!(got, a, "piece {piece}");
            let asked = asked.into_inner();
            let step = (piece / 8).max(1) as u64 * 8;
            assert!(
                asked[2..].iter().all(|r| r.end - r.start <= step),
                "piece {piece}: {asked:?}"
            );
        }
        let cut = bytes.slice(..bytes.len() - 8);
        let err = futures::executor::block_on(Partial::read_ranged(
            cut.len() as u64,
            "cycles/000/partial/00002",
            read(cut.clone()),
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("cycles/000/partial/00002"),
            "{err}"
        );
    }
}
