//! Numerical comparison of a reference and a device's output, tensor by tensor:
//! `.npy` (NumPy's format, versions 1–3) and `.safetensors` (every tensor by name).
//!
//! The files are streamed in fixed-size chunks from where the headers say each tensor
//! lies, so two 4 GiB files compare in a few MiB of memory. Per tensor: shape and dtype
//! checks, then per element either a closeness test (`|out − ref| ≤ atol + rtol·|ref|`,
//! as `torch.testing.assert_close`; defaults per dtype from it, integers exact) or a ULP
//! distance bound. A NaN or infinity that the other side does not have is counted apart
//! (NaN equals NaN here: a kernel that keeps a reference's NaN is right). Reported: the
//! mismatches, max absolute and relative error, ULP statistics (same dtype only), the
//! first mismatching indices.
//!
//! dtypes: float16, bfloat16 (safetensors `BF16`; in `.npy`, where ml_dtypes writes it as
//! the 2-byte void `V2`), float32, float64, signed and unsigned integers, bool.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;

use crate::Error;

/// Elements read per chunk (per side).
const CHUNK: usize = 1 << 16;
/// Mismatching indices kept per tensor.
const FIRST: usize = 10;

/// An element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
    /// IEEE single.
    F32,
    /// IEEE double.
    F64,
    /// Signed integers of 1, 2, 4, 8 bytes.
    I8,
    /// 16-bit signed.
    I16,
    /// 32-bit signed.
    I32,
    /// 64-bit signed.
    I64,
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit.
    U16,
    /// Unsigned 32-bit.
    U32,
    /// Unsigned 64-bit.
    U64,
    /// One byte, 0 or 1.
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::Bf16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// True for floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::Bf16 | DType::F32 | DType::F64)
    }

    /// `torch.testing.assert_close`'s default (rtol, atol); integers and bool exact.
    pub fn default_tolerance(self) -> (f64, f64) {
        match self {
            DType::F16 => (1e-3, 1e-5),
            DType::Bf16 => (1.6e-2, 1e-5),
            DType::F32 => (1.3e-6, 1e-5),
            DType::F64 => (1e-7, 1e-7),
            _ => (0.0, 0.0),
        }
    }
}

/// Where one tensor lies in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorInfo {
    /// The name (the file's stem for `.npy`).
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// The shape.
    pub shape: Vec<u64>,
    /// Byte offset of the data in the file.
    #[serde(skip)]
    pub offset: u64,
    /// Big-endian data.
    #[serde(skip)]
    pub big_endian: bool,
    /// Column-major (`.npy` `fortran_order`).
    pub fortran_order: bool,
}

impl TensorInfo {
    /// The number of elements.
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

fn bad(path: &Path, position: impl Into<String>, message: impl Into<String>) -> Error {
    Error::format(&path.display().to_string(), position.into(), message.into())
}

fn io(path: &Path, e: &std::io::Error) -> Error {
    bad(path, "the whole file", e.to_string())
}

/// The tensors of a `.npy` or `.safetensors` file (by its first bytes).
///
/// # Errors
///
/// [`Error::Format`]: unreadable, not either format, a header that does not parse, or
/// data that ends before the header says.
pub fn tensors(path: &Path) -> Result<Vec<TensorInfo>, Error> {
    let mut f = File::open(path).map_err(|e| io(path, &e))?;
    let size = f.metadata().map_err(|e| io(path, &e))?.len();
    let mut magic = [0u8; 8];
    let got = read_up_to(&mut f, &mut magic).map_err(|e| io(path, &e))?;
    let list = if got >= 6 && &magic[..6] == b"\x93NUMPY" {
        vec![npy_header(path, &mut f, &magic)?]
    } else if got == 8 {
        safetensors_header(path, &mut f, u64::from_le_bytes(magic), size)?
    } else {
        return Err(bad(
            path,
            "byte 0",
            "neither .npy (\\x93NUMPY) nor .safetensors (a header length)",
        ));
    };
    for t in &list {
        let end = t
            .elements()
            .checked_mul(t.dtype.size() as u64)
            .and_then(|n| n.checked_add(t.offset))
            .ok_or_else(|| bad(path, &t.name, "the shape's size overflows"))?;
        if end > size {
            return Err(bad(
                path,
                format!("tensor {:?}", t.name),
                format!("its data ends at byte {end} but the file has {size} (truncated)"),
            ));
        }
    }
    Ok(list)
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn npy_header(path: &Path, f: &mut File, magic: &[u8; 8]) -> Result<TensorInfo, Error> {
    let major = magic[6];
    let (len, start) = match major {
        1 => {
            let mut b = [0u8; 2];
            f.read_exact(&mut b).map_err(|e| io(path, &e))?;
            (u64::from(u16::from_le_bytes(b)), 10u64)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            f.read_exact(&mut b).map_err(|e| io(path, &e))?;
            (u64::from(u32::from_le_bytes(b)), 12u64)
        }
        v => {
            return Err(bad(
                path,
                "byte 6",
                format!("npy format version {v} is not 1, 2 or 3"),
            ));
        }
    };
    if len > 1 << 20 {
        return Err(bad(
            path,
            "header",
            format!("a {len}-byte header is not an npy header"),
        ));
    }
    let mut header = vec![0u8; usize::try_from(len).unwrap_or(0)];
    f.read_exact(&mut header).map_err(|_| {
        bad(
            path,
            "header",
            "the file ends inside the header (truncated)",
        )
    })?;
    let header = String::from_utf8_lossy(&header);
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        Some(
            header[at + key.len() + 2..]
                .trim_start()
                .strip_prefix(':')?
                .trim_start(),
        )
    };
    let descr = field("descr")
        .and_then(|v| v.strip_prefix('\''))
        .and_then(|v| v.split('\'').next())
        .ok_or_else(|| bad(path, "header", format!("no 'descr' in {header:?}")))?;
    let (big_endian, code) = match descr.as_bytes().first() {
        Some(b'<' | b'|' | b'=') => (false, &descr[1..]),
        Some(b'>') => (true, &descr[1..]),
        _ => (false, descr),
    };
    let dtype = match code {
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        "V2" | "bfloat16" => DType::Bf16,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        "u8" => DType::U64,
        "b1" => DType::Bool,
        other => {
            return Err(bad(
                path,
                "header 'descr'",
                format!(
                    "{other:?} is not a dtype linkwise compares (f2, f4, f8, bfloat16, i/u 1-8, b1)"
                ),
            ));
        }
    };
    let fortran_order = field("fortran_order").is_some_and(|v| v.starts_with("True"));
    let shape_text = field("shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split(')').next())
        .ok_or_else(|| {
            bad(
                path,
                "header 'shape'",
                format!("no shape tuple in {header:?}"),
            )
        })?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<u64>())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|_| {
            bad(
                path,
                "header 'shape'",
                format!("({shape_text}) is not a tuple of sizes"),
            )
        })?;
    Ok(TensorInfo {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        dtype,
        shape,
        offset: start + len,
        big_endian,
        fortran_order,
    })
}

fn safetensors_header(
    path: &Path,
    f: &mut File,
    len: u64,
    size: u64,
) -> Result<Vec<TensorInfo>, Error> {
    if len > 100 << 20 || 8 + len > size {
        return Err(bad(
            path,
            "byte 0",
            format!(
                "a header of {len} bytes does not fit the {size}-byte file: not .safetensors, or truncated"
            ),
        ));
    }
    let mut header = vec![0u8; usize::try_from(len).unwrap_or(0)];
    f.read_exact(&mut header).map_err(|e| io(path, &e))?;
    let v: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(path, format!("header column {}", e.column()), e.to_string()))?;
    let map = v
        .as_object()
        .ok_or_else(|| bad(path, "header", "not a JSON object"))?;
    let mut out = Vec::new();
    for (name, t) in map.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
        let at = format!("header {name:?}");
        let dtype = match t.get("dtype").and_then(|d| d.as_str()) {
            Some("F16") => DType::F16,
            Some("BF16") => DType::Bf16,
            Some("F32") => DType::F32,
            Some("F64") => DType::F64,
            Some("I8") => DType::I8,
            Some("I16") => DType::I16,
            Some("I32") => DType::I32,
            Some("I64") => DType::I64,
            Some("U8") => DType::U8,
            Some("U16") => DType::U16,
            Some("U32") => DType::U32,
            Some("U64") => DType::U64,
            Some("BOOL") => DType::Bool,
            other => {
                return Err(bad(
                    path,
                    at,
                    format!("dtype {other:?} is not one linkwise compares"),
                ));
            }
        };
        let shape: Vec<u64> = t
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(serde_json::Value::as_u64).collect())
            .ok_or_else(|| bad(path, at.clone(), "shape is not a list of sizes"))?;
        let offsets: Vec<u64> = t
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(serde_json::Value::as_u64).collect())
            .filter(|o: &Vec<u64>| o.len() == 2 && o[0] <= o[1])
            .ok_or_else(|| bad(path, at.clone(), "data_offsets is not [begin, end]"))?;
        let info = TensorInfo {
            name: name.clone(),
            dtype,
            shape,
            offset: 8 + len + offsets[0],
            big_endian: false,
            fortran_order: false,
        };
        let want = info.elements().checked_mul(dtype.size() as u64);
        if want != Some(offsets[1] - offsets[0]) {
            return Err(bad(
                path,
                at,
                format!(
                    "data_offsets span {} bytes, the shape and dtype need {want:?}",
                    offsets[1] - offsets[0]
                ),
            ));
        }
        out.push(info);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How close is close enough.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum Tolerance {
    /// Each dtype's default (rtol, atol).
    Default,
    /// `|out − ref| ≤ atol + rtol·|ref|`.
    Close {
        /// Relative.
        rtol: f64,
        /// Absolute.
        atol: f64,
    },
    /// At most this many units in the last place (floats of the same dtype).
    Ulp {
        /// The bound.
        max: u64,
    },
}

/// ULP distances of one tensor.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UlpStats {
    /// The largest.
    pub max: u64,
    /// The mean over finite pairs.
    pub mean: f64,
    /// Elements within 0, 1, 4, 16, 256 ULP.
    pub within: BTreeMap<u64, u64>,
}

/// One tensor compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorComparison {
    /// The tensor.
    pub name: String,
    /// The reference's dtype.
    pub dtype: DType,
    /// The output's dtype.
    pub output_dtype: DType,
    /// The shape.
    pub shape: Vec<u64>,
    /// Elements compared.
    pub elements: u64,
    /// Elements outside the tolerance (NaN and infinity mismatches included).
    pub mismatches: u64,
    /// NaN on one side only.
    pub nan_mismatches: u64,
    /// An infinity on one side only, or of the other sign.
    pub inf_mismatches: u64,
    /// The largest |out − ref| over finite pairs.
    pub max_abs_error: f64,
    /// The largest |out − ref| / |ref| over finite pairs with ref ≠ 0.
    pub max_rel_error: f64,
    /// ULP distances, when both sides have the same float dtype.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ulp: Option<UlpStats>,
    /// The first mismatching indices (row-major), up to ten.
    pub first_mismatches: Vec<Vec<u64>>,
    /// Why the tensor could not be compared element by element (shape, dtype).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Within tolerance.
    pub pass: bool,
}

/// Two files compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The reference.
    pub reference: String,
    /// The output.
    pub output: String,
    /// The tolerance.
    pub tolerance: Tolerance,
    /// Each tensor.
    pub tensors: Vec<TensorComparison>,
    /// Tensors in one file only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Everything within tolerance.
    pub pass: bool,
}

/// A decoder of one element: the value and, for floats, the ordered integer for ULPs.
fn decode(d: DType, big: bool, b: &[u8]) -> (f64, i64) {
    macro_rules! bytes {
        ($n:literal) => {{
            let mut a = [0u8; $n];
            a.copy_from_slice(&b[..$n]);
            if big {
                a.reverse();
            }
            a
        }};
    }
    let ordered = |bits: u64, width: u32| {
        let mag = bits & ((1u64 << (width - 1)) - 1);
        let m = i64::try_from(mag).unwrap_or(i64::MAX);
        if (bits >> (width - 1)) & 1 == 1 {
            -m
        } else {
            m
        }
    };
    match d {
        DType::F16 => {
            let bits = u16::from_le_bytes(bytes!(2));
            (f16_to_f64(bits), ordered(u64::from(bits), 16))
        }
        DType::Bf16 => {
            let bits = u16::from_le_bytes(bytes!(2));
            (
                f64::from(f32::from_bits(u32::from(bits) << 16)),
                ordered(u64::from(bits), 16),
            )
        }
        DType::F32 => {
            let bits = u32::from_le_bytes(bytes!(4));
            (
                f64::from(f32::from_bits(bits)),
                ordered(u64::from(bits), 32),
            )
        }
        DType::F64 => {
            let bits = u64::from_le_bytes(bytes!(8));
            (f64::from_bits(bits), ordered(bits, 64))
        }
        DType::I8 => (f64::from(i8::from_le_bytes(bytes!(1))), 0),
        DType::I16 => (f64::from(i16::from_le_bytes(bytes!(2))), 0),
        DType::I32 => (f64::from(i32::from_le_bytes(bytes!(4))), 0),
        DType::I64 => (i64::from_le_bytes(bytes!(8)) as f64, 0),
        DType::U8 | DType::Bool => (f64::from(b[0]), 0),
        DType::U16 => (f64::from(u16::from_le_bytes(bytes!(2))), 0),
        DType::U32 => (f64::from(u32::from_le_bytes(bytes!(4))), 0),
        DType::U64 => (u64::from_le_bytes(bytes!(8)) as f64, 0),
    }
}

/// Decodes a chunk of elements into values and ULP-ordered integers, the dtype matched
/// once per chunk rather than once per element.
fn decode_chunk(d: DType, big: bool, bytes: &[u8], values: &mut Vec<f64>, ordered: &mut Vec<i64>) {
    values.clear();
    ordered.clear();
    let size = d.size();
    match (d, big) {
        (DType::F32, false) => {
            for c in bytes.chunks_exact(4) {
                let bits = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                values.push(f64::from(f32::from_bits(bits)));
                let mag = i64::from(bits & 0x7fff_ffff);
                ordered.push(if bits >> 31 == 1 { -mag } else { mag });
            }
        }
        _ => {
            for c in bytes.chunks_exact(size) {
                let (v, o) = decode(d, big, c);
                values.push(v);
                ordered.push(o);
            }
        }
    }
}

/// IEEE half to double, subnormals, infinities and NaN included.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        0x1f if frac == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// The row-major multi-index of element `i` (of a column-major tensor when `fortran`).
fn index_of(mut i: u64, shape: &[u64], fortran: bool) -> Vec<u64> {
    let mut idx = vec![0; shape.len()];
    let dims: Vec<usize> = if fortran {
        (0..shape.len()).collect()
    } else {
        (0..shape.len()).rev().collect()
    };
    for d in dims {
        let n = shape[d].max(1);
        idx[d] = i % n;
        i /= n;
    }
    idx
}

fn compare_tensor(
    rp: &Path,
    op: &Path,
    r: &TensorInfo,
    o: &TensorInfo,
    tol: Tolerance,
) -> Result<TensorComparison, Error> {
    let mut c = TensorComparison {
        name: r.name.clone(),
        dtype: r.dtype,
        output_dtype: o.dtype,
        shape: r.shape.clone(),
        elements: 0,
        mismatches: 0,
        nan_mismatches: 0,
        inf_mismatches: 0,
        max_abs_error: 0.0,
        max_rel_error: 0.0,
        ulp: None,
        first_mismatches: Vec::new(),
        problem: None,
        pass: false,
    };
    if r.shape != o.shape {
        c.problem = Some(format!(
            "shape {:?} in the reference, {:?} in the output",
            r.shape, o.shape
        ));
        return Ok(c);
    }
    if r.fortran_order != o.fortran_order {
        c.problem = Some("one file is column-major (fortran_order) and the other is not".into());
        return Ok(c);
    }
    let same_float = r.dtype == o.dtype && r.dtype.is_float();
    if matches!(tol, Tolerance::Ulp { .. }) && !same_float {
        c.problem = Some(format!(
            "ULP distances need the same float dtype on both sides ({:?} and {:?})",
            r.dtype, o.dtype
        ));
        return Ok(c);
    }
    let (rtol, atol) = match tol {
        Tolerance::Close { rtol, atol } => (rtol, atol),
        // The coarser dtype's default.
        Tolerance::Default => {
            let (a, b) = (r.dtype.default_tolerance(), o.dtype.default_tolerance());
            (a.0.max(b.0), a.1.max(b.1))
        }
        Tolerance::Ulp { .. } => (0.0, 0.0),
    };
    let max_ulp = match tol {
        Tolerance::Ulp { max } => Some(max),
        _ => None,
    };
    let mut ulp = same_float.then(UlpStats::default);
    const BOUNDS: [u64; 5] = [0, 1, 4, 16, 256];
    let mut within = [0u64; 5];
    let mut ulp_sum = 0f64;
    let mut ulp_count = 0u64;
    let open = |p: &Path, t: &TensorInfo| -> Result<BufReader<File>, Error> {
        let mut f = File::open(p).map_err(|e| io(p, &e))?;
        f.seek(SeekFrom::Start(t.offset)).map_err(|e| io(p, &e))?;
        Ok(BufReader::with_capacity(1 << 20, f))
    };
    let (mut fr, mut fo) = (open(rp, r)?, open(op, o)?);
    let (rs, os) = (r.dtype.size(), o.dtype.size());
    let total = r.elements();
    let (mut rb, mut ob) = (vec![0u8; CHUNK * rs], vec![0u8; CHUNK * os]);
    let (mut rv, mut ro, mut ov, mut oo) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut done = 0u64;
    while done < total {
        let n = usize::try_from((total - done).min(CHUNK as u64)).unwrap_or(CHUNK);
        fr.read_exact(&mut rb[..n * rs]).map_err(|_| {
            bad(
                rp,
                format!("tensor {:?}", r.name),
                "the data ends early (truncated)",
            )
        })?;
        fo.read_exact(&mut ob[..n * os]).map_err(|_| {
            bad(
                op,
                format!("tensor {:?}", o.name),
                "the data ends early (truncated)",
            )
        })?;
        decode_chunk(r.dtype, r.big_endian, &rb[..n * rs], &mut rv, &mut ro);
        decode_chunk(o.dtype, o.big_endian, &ob[..n * os], &mut ov, &mut oo);
        for k in 0..n {
            let (a, ao, b, bo) = (rv[k], ro[k], ov[k], oo[k]);
            let mut bad_element = false;
            if a.is_nan() || b.is_nan() {
                if a.is_nan() != b.is_nan() {
                    c.nan_mismatches += 1;
                    bad_element = true;
                }
            } else if a.is_infinite() || b.is_infinite() {
                if a != b {
                    c.inf_mismatches += 1;
                    bad_element = true;
                }
            } else {
                let err = (b - a).abs();
                c.max_abs_error = c.max_abs_error.max(err);
                if a != 0.0 {
                    c.max_rel_error = c.max_rel_error.max(err / a.abs());
                }
                let d = ao.abs_diff(bo);
                if let Some(u) = &mut ulp {
                    u.max = u.max.max(d);
                    ulp_sum += d as f64;
                    ulp_count += 1;
                    for (w, bound) in within.iter_mut().zip(BOUNDS) {
                        *w += u64::from(d <= bound);
                    }
                }
                bad_element = match max_ulp {
                    Some(m) => d > m,
                    None => err > atol + rtol * a.abs(),
                };
            }
            if bad_element {
                c.mismatches += 1;
                if c.first_mismatches.len() < FIRST {
                    c.first_mismatches
                        .push(index_of(done + k as u64, &r.shape, r.fortran_order));
                }
            }
        }
        done += n as u64;
    }
    c.elements = total;
    if let Some(u) = &mut ulp {
        u.mean = if ulp_count > 0 {
            ulp_sum / ulp_count as f64
        } else {
            0.0
        };
        u.within = BOUNDS.into_iter().zip(within).collect();
    }
    c.ulp = ulp;
    c.pass = c.mismatches == 0;
    Ok(c)
}

/// Compares every tensor of `reference` with the tensor of the same name in `output`
/// (for two `.npy` files, their one tensor whatever the names).
///
/// # Errors
///
/// [`Error::Format`]: a file that cannot be read or is not `.npy` / `.safetensors`.
pub fn compare(reference: &Path, output: &Path, tolerance: Tolerance) -> Result<Comparison, Error> {
    let (rt, ot) = (tensors(reference)?, tensors(output)?);
    let mut out = Comparison {
        reference: reference.display().to_string(),
        output: output.display().to_string(),
        tolerance,
        tensors: Vec::new(),
        missing: Vec::new(),
        pass: false,
    };
    let single = rt.len() == 1 && ot.len() == 1;
    for r in &rt {
        let o = if single {
            ot.first()
        } else {
            ot.iter().find(|o| o.name == r.name)
        };
        match o {
            Some(o) => out
                .tensors
                .push(compare_tensor(reference, output, r, o, tolerance)?),
            None => out.missing.push(format!("{}: not in the output", r.name)),
        }
    }
    if !single {
        for o in ot.iter().filter(|o| !rt.iter().any(|r| r.name == o.name)) {
            out.missing
                .push(format!("{}: not in the reference", o.name));
        }
    }
    out.pass = out.missing.is_empty() && out.tensors.iter().all(|t| t.pass);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_decodes_normals_subnormals_and_specials() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x7c00), f64::INFINITY);
        assert!(f16_to_f64(0x7e00).is_nan());
    }

    #[test]
    fn ulp_order_is_continuous_across_zero() {
        let (_, p) = decode(DType::F32, false, &1e-45f32.to_le_bytes());
        let (_, z) = decode(DType::F32, false, &0f32.to_le_bytes());
        let (_, n) = decode(DType::F32, false, &(-0f32).to_le_bytes());
        let (_, m) = decode(DType::F32, false, &(-1e-45f32).to_le_bytes());
        assert_eq!((p - z, z - n, n - m), (1, 0, 1));
    }

    #[test]
    fn indices_follow_the_memory_order() {
        assert_eq!(index_of(5, &[2, 3], false), [1, 2]);
        assert_eq!(index_of(5, &[2, 3], true), [1, 2]);
        assert_eq!(index_of(1, &[2, 3], true), [1, 0]);
        assert_eq!(index_of(1, &[2, 3], false), [0, 1]);
    }
}
