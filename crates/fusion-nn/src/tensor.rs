//! Dense row-major tensors.
//!
//! **Layout.** A batch is a tensor of shape `[N, ...sample shape]`, batch-major
//! (sample `i` occupies `data[i * sample_len .. (i + 1) * sample_len]`). Image
//! samples are `[C, H, W]` (channels, rows, columns; row-major, so `W` is the
//! fastest index), vectors are `[D]`. [`Tensor<f32>`](Tensor) carries real
//! values; [`RingTensor`] carries elements of `Z_{2^l}` (low `l` bits of a `u64`)
//! for the fixed-point engine and the secure engine's shares.

use crate::error::{NnError, Result};

/// A row-major tensor with an explicit shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T = f32> {
    shape: Vec<usize>,
    data: Vec<T>,
}

/// A tensor of ring elements (`u64` with the bits above `l` clear).
pub type RingTensor = Tensor<u64>;

impl<T> Tensor<T> {
    /// A tensor of the given shape; `data.len()` must be the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Result<Self> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(NnError::TensorLength {
                shape,
                expected,
                found: data.len(),
            });
        }
        Ok(Tensor { shape, data })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements, row-major.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The elements, mutably.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// The elements, by value.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The batch size: the first dimension (1 for a 0-dimensional tensor).
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// The shape of one sample: all dimensions but the first.
    pub fn sample_shape(&self) -> &[usize] {
        if self.shape.is_empty() {
            &[]
        } else {
            &self.shape[1..]
        }
    }

    /// Elements per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape().iter().product()
    }

    /// Sample `i` of the batch, flattened. Panics if `i >= batch()`.
    pub fn sample(&self, i: usize) -> &[T] {
        let n = self.sample_len();
        &self.data[i * n..(i + 1) * n]
    }

    /// Same elements, another shape with the same number of elements.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self> {
        Tensor::new(shape, self.data)
    }

    /// Applies `f` to every element.
    pub fn map<U>(&self, f: impl Fn(&T) -> U) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(f).collect(),
        }
    }
}

impl<T: Clone> Tensor<T> {
    /// The samples `range` of a batch, as a new batch.
    pub fn slice_batch(&self, range: std::ops::Range<usize>) -> Self {
        let n = self.sample_len();
        let mut shape = self.shape.clone();
        if let Some(b) = shape.first_mut() {
            *b = range.len();
        }
        Tensor {
            shape,
            data: self.data[range.start * n..range.end * n].to_vec(),
        }
    }

    /// The samples at `indices`, in that order, as a new batch.
    pub fn gather(&self, indices: &[usize]) -> Self {
        let n = self.sample_len();
        let mut data = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            data.extend_from_slice(self.sample(i));
        }
        let mut shape = self.shape.clone();
        if let Some(b) = shape.first_mut() {
            *b = indices.len();
        }
        Tensor { shape, data }
    }
}

impl<T: Clone + Default> Tensor<T> {
    /// A tensor of default values (zeros).
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: vec![T::default(); n],
        }
    }
}

impl Tensor<f32> {
    /// Index of the largest element of every sample (first one on ties).
    pub fn argmax_rows(&self) -> Vec<usize> {
        let n = self.sample_len().max(1);
        self.data.chunks(n).map(argmax_f32).collect()
    }
}

/// Index of the largest element (first one on ties; NaN never wins).
pub fn argmax_f32(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rejects_wrong_length() {
        assert!(Tensor::new(vec![2, 3], vec![0f32; 5]).is_err());
        let t = Tensor::new(vec![2, 3], vec![0f32, 1., 2., 3., 4., 5.]).expect("ok");
        assert_eq!(t.sample(1), &[3., 4., 5.]);
        assert_eq!(t.gather(&[1, 0]).data(), &[3., 4., 5., 0., 1., 2.]);
        assert_eq!(t.slice_batch(1..2).shape(), &[1, 3]);
    }

    #[test]
    fn argmax_takes_first_maximum() {
        let t = Tensor::new(vec![2, 3], vec![1f32, 3., 3., -1., -2., -0.5]).expect("ok");
        assert_eq!(t.argmax_rows(), vec![1, 2]);
    }
}
