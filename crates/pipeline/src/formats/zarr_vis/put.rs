//! Encoding and storing one data chunk while keeping its buffer for reuse: a large
//! import writes hundreds of chunks of tens of MB, and a fresh buffer per chunk (the
//! encoded copy zarrs makes, the next chunk's elements) is memory the kernel must fault
//! in and zero page by page, which cost more CPU than the encoding itself
//! (docs/performance.md, "MeasurementSet import").
//!
//! A chunk whose codecs are just `bytes` (little endian) and `crc32c` is stored without
//! a copy: its elements' own memory, then the 4-byte checksum, as one object of two
//! parts; the buffer comes back once the store has dropped it. Any other chain (zstd,
//! say) is encoded by zarrs from a borrowed view, so the elements come back at once.
//! Either way the object holds exactly the bytes `Array::store_chunk` would store (a
//! test compares them).

use std::sync::Arc;
use std::sync::mpsc;

use bytes::Bytes;
use num_complex::{Complex32, Complex64};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::Value;
use zarrs::array::{Array, ArrayToBytesCodecTraits, CodecOptions, Element};
use zarrs::metadata::ArrayMetadata;
use zarrs::storage::AsyncReadableWritableListableStorageTraits;

type ZArray = Array<dyn AsyncReadableWritableListableStorageTraits>;

/// Element types whose memory is their `bytes`-codec encoding on a little-endian
/// machine.
///
/// # Safety
/// `Self` has no padding bytes (every byte of a value may be read as a `u8`).
pub unsafe trait PlainElement: Element + Copy + Send + Sync + 'static {}
// SAFETY: bool is one byte, 0 or 1 (Zarr's bool encoding).
unsafe impl PlainElement for bool {}
// SAFETY: IEEE floats, no padding.
unsafe impl PlainElement for f32 {}
// SAFETY: as f32.
unsafe impl PlainElement for f64 {}
// SAFETY: num_complex::Complex is repr(C) (re, im): two f32, no padding; Zarr's
// complex64 is the same two floats.
unsafe impl PlainElement for Complex32 {}
// SAFETY: as Complex32, with f64.
unsafe impl PlainElement for Complex64 {}

/// The bytes of `v`'s elements.
fn bytes_of<T: PlainElement>(v: &[T]) -> &[u8] {
    // SAFETY: PlainElement types have no padding; the length is the slice's size.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// A chunk's elements lent to the store as the object's first part; on drop (when the
/// store is done with them) they go back through `back`.
struct Lease<T: PlainElement> {
    buf: Vec<T>,
    back: mpsc::Sender<Vec<T>>,
}

impl<T: PlainElement> AsRef<[u8]> for Lease<T> {
    fn as_ref(&self) -> &[u8] {
        bytes_of(&self.buf)
    }
}

impl<T: PlainElement> Drop for Lease<T> {
    fn drop(&mut self) {
        let _ = self.back.send(std::mem::take(&mut self.buf));
    }
}

/// Whether `a` has storage transformers (then a chunk's object is not simply at its
/// key, and [`store_chunk`] leaves the storing to zarrs). Read from the typed metadata
/// (no serialisation: it is asked once per chunk stored).
fn transformed(a: &ZArray) -> bool {
    match a.metadata() {
        ArrayMetadata::V3(m) => !m.storage_transformers.is_empty(),
        // Zarr v2 has no storage transformers.
        ArrayMetadata::V2(_) => false,
    }
}

/// Whether `a` stores a chunk as its elements' little-endian bytes followed by their
/// crc32c (codecs `bytes` + `crc32c`), on a little-endian machine, so that
/// [`store_chunk`] may store the elements' own memory. Read from the typed metadata.
fn checksum_only(a: &ZArray) -> bool {
    if cfg!(target_endian = "big") {
        return false;
    }
    let ArrayMetadata::V3(m) = a.metadata() else {
        return false;
    };
    let [bytes, crc] = m.codecs.as_slice() else {
        return false;
    };
    let endian = bytes
        .configuration()
        .and_then(|c| c.get("endian"))
        .and_then(Value::as_str);
    bytes.name() == "bytes"
        && matches!(endian, None | Some("little"))
        && crc.name() == "crc32c"
        && crc.configuration_is_none_or_empty()
}

/// Encodes `data` (chunk `idx` of `a`, its elements in C order) as `a`'s codecs encode
/// it, with `options`, and stores it at `key` (the chunk's full key in `store`, the
/// store `a` writes to). Returns the buffer for reuse when the store gave it back
/// (always, except for a store that keeps the payload's parts as given). The encoding
/// runs on tokio's blocking pool when there is a runtime.
pub(crate) async fn store_chunk<T: PlainElement>(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    a: &ZArray,
    idx: &[u64],
    data: Vec<T>,
    options: &CodecOptions,
) -> Result<Option<Vec<T>>, String> {
    if transformed(a) {
        a.async_store_chunk_opt(idx, data, options)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(None);
    }
    let path = Path::from(key);
    let put = |payload: PutPayload| async move {
        store
            .put(&path, payload)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    if checksum_only(a) {
        let (data, crc) = blocking(move || {
            let crc = crc32c::crc32c(bytes_of(&data));
            (data, crc)
        })
        .await?;
        let (tx, rx) = mpsc::channel();
        let elements = Bytes::from_owner(Lease {
            buf: data,
            back: tx,
        });
        let checksum = Bytes::copy_from_slice(&crc.to_le_bytes());
        put(PutPayload::from_iter([elements, checksum])).await?;
        return Ok(rx.try_recv().ok());
    }
    let shape = a.chunk_shape(idx).map_err(|e| e.to_string())?;
    let (codecs, dtype, fill) = (a.codecs(), a.data_type().clone(), a.fill_value().clone());
    let options = *options;
    let (data, encoded) = blocking(move || {
        let encoded = T::to_array_bytes(&dtype, &data)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                codecs
                    .encode(bytes, &shape, &dtype, &fill, &options)
                    .map(|e| Bytes::from(e.into_owned()))
                    .map_err(|e| e.to_string())
            });
        (data, encoded)
    })
    .await?;
    put(PutPayload::from(encoded?)).await?;
    Ok(Some(data))
}

/// Runs `f` on tokio's blocking pool when there is a runtime, else here.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => rt
            .spawn_blocking(f)
            .await
            .map_err(|e| format!("the encoding task failed: {e}")),
        Err(_) => Ok(f()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::prefix::PrefixStore;
    use std::sync::Arc;
    use zarrs::array::codec::{BytesCodec, Crc32cCodec, ZstdCodec};
    use zarrs::array::{ArrayBuilder, DataType, Endianness, FillValueMetadata, data_type};
    use zarrs_object_store::AsyncObjectStore;

    /// A [4, 3] array of [2, 3] chunks at `name` in `store` with codecs `bytes` +
    /// `crc32c`, or with zstd before `crc32c`.
    fn array(
        store: &Arc<dyn ObjectStore>,
        name: &str,
        (dtype, fill): (DataType, Value),
        zstd: bool,
    ) -> ZArray {
        let storage: Arc<dyn AsyncReadableWritableListableStorageTraits> =
            Arc::new(AsyncObjectStore::new(PrefixStore::new(store.clone(), "ds")));
        let fill: FillValueMetadata = serde_json::from_value(fill).unwrap();
        let mut b = ArrayBuilder::new(vec![4, 3], [2u64, 3].as_slice(), dtype.clone(), fill);
        if dtype.fixed_size().is_some_and(|s| s > 1) {
            b.array_to_bytes_codec(Arc::new(BytesCodec::new(Some(Endianness::Little))));
        }
        let mut btb: Vec<Arc<dyn zarrs::array::BytesToBytesCodecTraits>> = Vec::new();
        if zstd {
            btb.push(Arc::new(ZstdCodec::new(1, false)));
        }
        btb.push(Arc::new(Crc32cCodec::new()));
        b.bytes_to_bytes_codecs(btb);
        b.build(storage, &format!("/{name}")).unwrap()
    }

    /// `got` equals `want` (one element type for both).
    fn same<T: PartialEq + std::fmt::Debug>(got: Vec<T>, want: &[T], what: &str) {
        assert_eq!(got, want, "{what}");
    }

    async fn stored(store: &Arc<dyn ObjectStore>, key: &str) -> Bytes {
        store
            .get(&Path::from(key))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn chunks_are_stored_as_zarrs_stores_them_and_buffers_come_back() {
        // Oracle: zarrs' own async_store_chunk_opt of the same elements, into a second
        // store; every codec chain the dataset uses, every element type.
        let ours: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let theirs: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let opts = CodecOptions::default().with_store_empty_chunks(true);
        let c = |re: f32, im: f32| Complex32::new(re, im);
        let vis = vec![
            c(1.5, -2.0),
            c(0.0, 3.25),
            c(f32::MAX, 1e-30),
            c(0.0, 0.0),
            c(-1.0, 0.5),
            c(7.0, 8.0),
        ];
        let weight = vec![0.0f32, 1.0, 2.5, 1e-8, 3.0, f32::MIN_POSITIVE];
        let flag = vec![true, false, false, true, true, false];
        let w64: Vec<f64> = weight.iter().map(|&w| f64::from(w) / 3.0).collect();
        let v64: Vec<Complex64> = vis
            .iter()
            .map(|v| Complex64::new(v.re.into(), -f64::from(v.im)))
            .collect();
        for zstd in [false, true] {
            let tag = if zstd { "z" } else { "c" };
            macro_rules! check {
                ($name:expr, $dtype:expr, $data:expr) => {{
                    let name = format!("{}{}", $name, tag);
                    let a = array(&ours, &name, $dtype, zstd);
                    let b = array(&theirs, &name, $dtype, zstd);
                    assert_eq!(checksum_only(&a), !zstd, "{name}");
                    assert!(!transformed(&a));
                    let key = format!("ds/{}", a.chunk_key(&[1, 0]).as_str());
                    let back = store_chunk(&ours, &key, &a, &[1, 0], $data.clone(), &opts)
                        .await
                        .unwrap();
                    b.async_store_chunk_opt(&[1, 0], $data.clone(), &opts)
                        .await
                        .unwrap();
                    assert_eq!(
                        stored(&ours, &key).await,
                        stored(&theirs, &key).await,
                        "{name}"
                    );
                    // zarrs reads it back (the checksum verified).
                    same(
                        a.async_retrieve_chunk(&[1, 0]).await.unwrap(),
                        &$data,
                        &name,
                    );
                    // The buffer comes back (the in-memory store copies a payload of two
                    // parts), unchanged.
                    same(back.expect("the buffer back"), &$data, &name);
                }};
            }
            let zero = || serde_json::json!(0.0);
            let czero = || serde_json::json!([0.0, 0.0]);
            check!("vis", (data_type::complex64(), czero()), vis);
            check!("vis64", (data_type::complex128(), czero()), v64);
            check!("weight", (data_type::float32(), zero()), weight);
            check!("weight64", (data_type::float64(), zero()), w64);
            check!("flag", (data_type::bool(), serde_json::json!(true)), flag);
        }
    }

    #[tokio::test]
    async fn a_store_that_drops_the_payload_gives_the_buffer_back() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let a = array(
            &store,
            "vis",
            (data_type::float32(), serde_json::json!(0.0)),
            false,
        );
        let data = vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let key = format!("ds/{}", a.chunk_key(&[0, 0]).as_str());
        let opts = CodecOptions::default();
        let back = store_chunk(&store, &key, &a, &[0, 0], data.clone(), &opts)
            .await
            .unwrap();
        assert_eq!(back.as_deref(), Some(&data[..]));
        let bytes = stored(&store, &key).await;
        assert_eq!(&bytes[..24], bytes_of(&data));
        assert_eq!(&bytes[24..], crc32c::crc32c(bytes_of(&data)).to_le_bytes());
        assert_eq!(
            a.async_retrieve_chunk::<Vec<f32>>(&[0, 0]).await.unwrap(),
            data
        );
    }
}
