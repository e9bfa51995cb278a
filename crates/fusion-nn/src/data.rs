//! Datasets: IDX and CSV loaders with validation, and a registry of the
//! datasets shipped in the repository's `data/` directory.
//!
//! | name | files under the data dir | sample | classes | splits |
//! |---|---|---|---|---|
//! | `mnist` | `mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` | `[1, 28, 28]`, pixels 0..255 | 10 | canonical 60,000 / 10,000 |
//! | `fashion-mnist` | `fashion-mnist/...` (same names) | `[1, 28, 28]`, 0..255 | 10 | first 40,000 of the train set / 10,000 |
//! | `breast-cancer` | `breast-cancer/wdbc.csv` | `[30]`, raw features | 2 (0 malignant, 1 benign) | seeded stratified 80/20: 456 / 113 |
//! | `digits` | `digits/digits.csv` | `[1, 8, 8]`, 0..16 | 10 | seeded stratified 80/20: 1,438 / 359 |
//!
//! Samples are **raw** (pixels are not scaled, features not standardised): the
//! model's public [`crate::model::Preprocess`] maps them to network inputs.
//!
//! **Held-out split of the CSV datasets.** With a ChaCha20 RNG seeded with
//! [`SPLIT_SEED`], the sample indices of each class (in file order) are shuffled
//! (Fisher-Yates, [`crate::util::shuffle`]) and the first `round(0.2 n_c)` of class
//! `c` go to the test split; both splits keep file order. The split is a pure
//! function of the file, so the client's public samples and the server's training
//! data never overlap.
//!
//! **Data directory.** [`data_dir`] returns `$FUSION_DATA` if set, otherwise the
//! first `data/` directory holding `README.md` found in the current directory
//! or one of its ancestors, otherwise the repository's `data/` relative to this
//! crate's source (compile-time path, works from a checkout).

use std::io::Read;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use crate::error::{NnError, Result};
use crate::tensor::Tensor;

/// Seed of the held-out split of the CSV datasets.
pub const SPLIT_SEED: u64 = 2023;
/// Fraction of each class held out for testing in the CSV datasets.
pub const TEST_FRACTION: f64 = 0.2;
/// The dataset names the registry knows.
pub const DATASETS: [&str; 4] = ["mnist", "fashion-mnist", "breast-cancer", "digits"];

/// Which split of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Training split.
    Train,
    /// Test (held-out) split.
    Test,
}

/// Labelled samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Raw samples `[N, ...sample shape]`.
    pub inputs: Tensor<f32>,
    /// Class of each sample.
    pub labels: Vec<usize>,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The samples at `indices`.
    pub fn gather(&self, indices: &[usize]) -> Split {
        Split {
            inputs: self.inputs.gather(indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// The first `n` samples (all if fewer).
    pub fn head(&self, n: usize) -> Split {
        let n = n.min(self.len());
        Split {
            inputs: self.inputs.slice_batch(0..n),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// Static facts about a registered dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetInfo {
    /// Registry name.
    pub name: &'static str,
    /// Shape of one sample.
    pub sample_shape: &'static [usize],
    /// Number of classes.
    pub classes: usize,
}

/// Facts about a registered dataset.
pub fn info(name: &str) -> Result<DatasetInfo> {
    Ok(match name {
        "mnist" => DatasetInfo {
            name: "mnist",
            sample_shape: &[1, 28, 28],
            classes: 10,
        },
        "fashion-mnist" => DatasetInfo {
            name: "fashion-mnist",
            sample_shape: &[1, 28, 28],
            classes: 10,
        },
        "breast-cancer" => DatasetInfo {
            name: "breast-cancer",
            sample_shape: &[30],
            classes: 2,
        },
        "digits" => DatasetInfo {
            name: "digits",
            sample_shape: &[1, 8, 8],
            classes: 10,
        },
        other => return Err(NnError::UnknownDataset(other.to_string())),
    })
}

/// The data directory (see the module doc).
pub fn data_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("FUSION_DATA") {
        let p = PathBuf::from(d);
        return if p.is_dir() {
            Ok(p)
        } else {
            Err(NnError::DataDir(format!(
                "FUSION_DATA={} is not a directory",
                p.display()
            )))
        };
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let cand = dir.join("data");
            if cand.join("README.md").is_file() {
                return Ok(cand);
            }
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    if built.join("README.md").is_file() {
        return Ok(built);
    }
    Err(NnError::DataDir(
        "set FUSION_DATA or run from inside the repository (a data/ directory with README.md)"
            .into(),
    ))
}

/// Loads one split of a registered dataset from `dir`.
pub fn load(dir: &Path, name: &str, part: Part) -> Result<Split> {
    let info = info(name)?;
    match name {
        "mnist" | "fashion-mnist" => {
            let prefix = if part == Part::Train { "train" } else { "t10k" };
            let images = dir
                .join(name)
                .join(format!("{prefix}-images-idx3-ubyte.gz"));
            let labels = dir
                .join(name)
                .join(format!("{prefix}-labels-idx1-ubyte.gz"));
            load_idx_pair(&images, &labels, info.classes)
        }
        "breast-cancer" | "digits" => {
            let file = if name == "breast-cancer" {
                "breast-cancer/wdbc.csv"
            } else {
                "digits/digits.csv"
            };
            let path = dir.join(file);
            let all = load_csv(&path, info.sample_shape, info.classes)?;
            let (train, test) =
                stratified_split(&all.labels, info.classes, SPLIT_SEED, TEST_FRACTION);
            Ok(all.gather(if part == Part::Train { &train } else { &test }))
        }
        other => Err(NnError::UnknownDataset(other.to_string())),
    }
}

/// The stratified split described in the module doc: `(train, test)` indices.
pub fn stratified_split(
    labels: &[usize],
    classes: usize,
    seed: u64,
    test_fraction: f64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut is_test = vec![false; labels.len()];
    for c in 0..classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        crate::util::shuffle(&mut rng, &mut idx);
        let k = (idx.len() as f64 * test_fraction).round() as usize;
        for &i in &idx[..k] {
            is_test[i] = true;
        }
    }
    let train = (0..labels.len()).filter(|&i| !is_test[i]).collect();
    let test = (0..labels.len()).filter(|&i| is_test[i]).collect();
    (train, test)
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| NnError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| NnError::Data {
                path: path.to_path_buf(),
                msg: format!("gzip: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// A parsed IDX file of unsigned bytes: dimensions and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// Dimensions (the first is the item count).
    pub dims: Vec<usize>,
    /// Row-major bytes.
    pub data: Vec<u8>,
}

/// Parses an IDX file of `u8` elements (magic `0x0000 08 nd`).
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<Idx> {
    let err = |msg: String| NnError::Data {
        path: path.to_path_buf(),
        msg,
    };
    if bytes.len() < 4 {
        return Err(err(format!(
            "{} bytes is too short for an IDX header",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(format!("bad IDX magic {:02x?}", &bytes[..4])));
    }
    if bytes[2] != 0x08 {
        return Err(err(format!(
            "IDX element type 0x{:02x} is not unsigned byte (0x08)",
            bytes[2]
        )));
    }
    let nd = bytes[3] as usize;
    if nd == 0 || nd > 4 {
        return Err(err(format!("IDX with {nd} dimensions is not supported")));
    }
    let header = 4 + 4 * nd;
    if bytes.len() < header {
        return Err(err("IDX header truncated".into()));
    }
    let dims: Vec<usize> = (0..nd)
        .map(|i| {
            u32::from_be_bytes([
                bytes[4 + 4 * i],
                bytes[5 + 4 * i],
                bytes[6 + 4 * i],
                bytes[7 + 4 * i],
            ]) as usize
        })
        .collect();
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err("IDX size overflows".into()))?;
    let body = &bytes[header..];
    if body.len() != len {
        return Err(err(format!(
            "IDX dimensions {dims:?} need {len} bytes of data, the file has {}",
            body.len()
        )));
    }
    Ok(Idx {
        dims,
        data: body.to_vec(),
    })
}

/// Loads an IDX image file (`[N, H, W]`) and its label file (`[N]`, values `< classes`)
/// as samples `[N, 1, H, W]` with pixel values 0..255.
pub fn load_idx_pair(images: &Path, labels: &Path, classes: usize) -> Result<Split> {
    let img = parse_idx(&read_maybe_gz(images)?, images)?;
    let lab = parse_idx(&read_maybe_gz(labels)?, labels)?;
    if img.dims.len() != 3 {
        return Err(NnError::Data {
            path: images.to_path_buf(),
            msg: format!("images need 3 dimensions, got {:?}", img.dims),
        });
    }
    if lab.dims.len() != 1 {
        return Err(NnError::Data {
            path: labels.to_path_buf(),
            msg: format!("labels need 1 dimension, got {:?}", lab.dims),
        });
    }
    if img.dims[0] != lab.dims[0] {
        return Err(NnError::Data {
            path: labels.to_path_buf(),
            msg: format!("{} labels for {} images", lab.dims[0], img.dims[0]),
        });
    }
    if let Some((i, &l)) = lab
        .data
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= classes)
    {
        return Err(NnError::Data {
            path: labels.to_path_buf(),
            msg: format!("label {l} of item {i} is not below {classes}"),
        });
    }
    let (n, h, w) = (img.dims[0], img.dims[1], img.dims[2]);
    let inputs = Tensor::new(
        vec![n, 1, h, w],
        img.data.iter().map(|&b| b as f32).collect(),
    )?;
    Ok(Split {
        inputs,
        labels: lab.data.iter().map(|&l| l as usize).collect(),
    })
}

/// Loads a CSV file with a header row, numeric feature columns and an integer
/// label in the last column (`< classes`); samples get `sample_shape`.
pub fn load_csv(path: &Path, sample_shape: &[usize], classes: usize) -> Result<Split> {
    let bytes = std::fs::read(path).map_err(|e| NnError::io(path, e))?;
    parse_csv(&bytes, path, sample_shape, classes)
}

/// Parses CSV text (see [`load_csv`]).
pub fn parse_csv(
    bytes: &[u8],
    path: &Path,
    sample_shape: &[usize],
    classes: usize,
) -> Result<Split> {
    let err = |line: usize, msg: String| NnError::Data {
        path: path.to_path_buf(),
        msg: format!("line {line}: {msg}"),
    };
    let text = std::str::from_utf8(bytes).map_err(|e| err(0, format!("not UTF-8: {e}")))?;
    let features: usize = sample_shape.iter().product();
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| err(1, "empty file".into()))?;
    let cols = header.split(',').count();
    if cols != features + 1 {
        return Err(err(
            1,
            format!(
                "header has {cols} columns, expected {} features and a label",
                features
            ),
        ));
    }
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != cols {
            return Err(err(
                i + 1,
                format!("{} fields, expected {cols}", fields.len()),
            ));
        }
        for f in &fields[..features] {
            let v: f32 = f
                .parse()
                .map_err(|_| err(i + 1, format!("`{f}` is not a number")))?;
            if !v.is_finite() {
                return Err(err(i + 1, format!("`{f}` is not finite")));
            }
            data.push(v);
        }
        let l: usize = fields[features].parse().map_err(|_| {
            err(
                i + 1,
                format!("label `{}` is not an integer", fields[features]),
            )
        })?;
        if l >= classes {
            return Err(err(i + 1, format!("label {l} is not below {classes}")));
        }
        labels.push(l);
    }
    if labels.is_empty() {
        return Err(err(2, "no samples".into()));
    }
    let mut shape = vec![labels.len()];
    shape.extend_from_slice(sample_shape);
    Ok(Split {
        inputs: Tensor::new(shape, data)?,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn idx_parses_and_rejects_malformed_headers() {
        let p = Path::new("x.idx");
        let ok = parse_idx(&idx(&[2, 2], &[1, 2, 3, 4]), p).expect("ok");
        assert_eq!(ok.dims, vec![2, 2]);
        assert!(
            parse_idx(&idx(&[2, 2], &[1, 2, 3]), p).is_err(),
            "truncated data"
        );
        assert!(
            parse_idx(&idx(&[2, 2], &[1, 2, 3, 4, 5]), p).is_err(),
            "trailing data"
        );
        assert!(parse_idx(&[0, 0, 8], p).is_err(), "short");
        assert!(parse_idx(&[1, 0, 8, 1, 0, 0, 0, 0], p).is_err(), "magic");
        assert!(
            parse_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 0], p).is_err(),
            "float type"
        );
        assert!(
            parse_idx(&[0, 0, 8, 2, 0, 0], p).is_err(),
            "header truncated"
        );
    }

    #[test]
    fn idx_pair_checks_counts_and_labels_through_gzip() {
        let dir = tempfile::tempdir().expect("tmp");
        let write_gz = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, bytes).expect("gz");
            std::fs::write(&path, enc.finish().expect("gz")).expect("write");
            path
        };
        let images = write_gz("i.gz", &idx(&[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 255]));
        let labels = write_gz("l.gz", &idx(&[2], &[3, 9]));
        let s = load_idx_pair(&images, &labels, 10).expect("ok");
        assert_eq!(s.inputs.shape(), &[2, 1, 2, 2]);
        assert_eq!(s.inputs.sample(1), &[4., 5., 6., 255.]);
        assert_eq!(s.labels, vec![3, 9]);
        let bad = write_gz("b.gz", &idx(&[2], &[3, 10]));
        assert!(
            load_idx_pair(&images, &bad, 10).is_err(),
            "label out of range"
        );
        let short = write_gz("s.gz", &idx(&[3], &[1, 2, 3]));
        assert!(
            load_idx_pair(&images, &short, 10).is_err(),
            "count mismatch"
        );
        let corrupt = dir.path().join("c.gz");
        std::fs::write(&corrupt, [0x1f, 0x8b, 8, 0, 1, 2, 3]).expect("write");
        assert!(matches!(
            load_idx_pair(&corrupt, &labels, 10),
            Err(NnError::Data { .. })
        ));
    }

    #[test]
    fn csv_rejects_bad_rows() {
        let p = Path::new("t.csv");
        let ok = parse_csv(b"a,b,label\n1,2,0\n3.5,-4,1\n", p, &[2], 2).expect("ok");
        assert_eq!(ok.inputs.data(), &[1., 2., 3.5, -4.]);
        assert_eq!(ok.labels, vec![0, 1]);
        for bad in [
            &b"a,b,label\n1,2\n"[..],
            b"a,b,label\n1,x,0\n",
            b"a,b,label\n1,2,2\n",
            b"a,b,label\n1,2,-1\n",
            b"a,label\n1,0\n",
            b"a,b,label\n",
            b"a,b,label\n1,inf,0\n",
        ] {
            let e = parse_csv(bad, p, &[2], 2).expect_err(std::str::from_utf8(bad).unwrap_or("?"));
            assert!(matches!(e, NnError::Data { .. }));
        }
    }

    #[test]
    fn stratified_split_is_deterministic_and_disjoint() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 3 == 0)).collect();
        let (tr, te) = stratified_split(&labels, 2, 5, 0.2);
        assert_eq!(
            stratified_split(&labels, 2, 5, 0.2),
            (tr.clone(), te.clone())
        );
        assert_eq!(tr.len() + te.len(), 100);
        assert_eq!(te.iter().filter(|&&i| labels[i] == 1).count(), 7); // round(34 * 0.2)
        assert!(te.iter().all(|i| !tr.contains(i)));
    }

    #[test]
    fn shipped_datasets_load_with_documented_sizes() {
        let dir = data_dir().expect("data dir");
        let bc_train = load(&dir, "breast-cancer", Part::Train).expect("bc");
        let bc_test = load(&dir, "breast-cancer", Part::Test).expect("bc");
        assert_eq!((bc_train.len(), bc_test.len()), (456, 113));
        let d = load(&dir, "digits", Part::Test).expect("digits");
        assert_eq!(d.len(), 359);
        assert_eq!(d.inputs.sample_shape(), &[1, 8, 8]);
        let m = load(&dir, "mnist", Part::Test).expect("mnist");
        assert_eq!(
            (m.len(), m.inputs.sample_shape()),
            (10_000, &[1usize, 28, 28][..])
        );
        assert!(matches!(
            load(&dir, "cifar", Part::Test),
            Err(NnError::UnknownDataset(_))
        ));
    }
}
