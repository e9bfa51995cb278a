//! [`Output`]: one decoded output of a two-party engine, the type the
//! engine seam ([`crate::engine`]) returns and verification
//! ([`crate::verify`]) checks. Its own module so that neither of those two
//! imports the other for it.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::Error;

/// One decoded output of the engine: the client's scores (logits) for a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    scores: Vec<f64>,
}

impl Output {
    /// An output with the given scores; fails on an empty score vector.
    pub fn new(scores: Vec<f64>) -> Result<Self, Error> {
        if scores.is_empty() {
            return Err(Error::MalformedOutput {
                position: 0,
                reason: "an output needs at least one score".into(),
            });
        }
        Ok(Output { scores })
    }

    /// A one-hot output of `classes` scores with a 1 at `label` (handy for
    /// engines that only produce labels). `label` must be `< classes`.
    pub fn one_hot(label: usize, classes: usize) -> Result<Self, Error> {
        if label >= classes {
            return Err(Error::MalformedOutput {
                position: 0,
                reason: format!("label {label} is not below {classes} classes"),
            });
        }
        let mut scores = vec![0.0; classes];
        scores[label] = 1.0;
        Ok(Output { scores })
    }

    /// The scores.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// The scores, by value.
    pub fn into_scores(self) -> Vec<f64> {
        self.scores
    }

    /// The predicted class: the index of the largest score. Ties go to the
    /// lowest index; `NaN` scores count as `-inf` (so an all-`NaN` output has
    /// label 0).
    pub fn label(&self) -> usize {
        let key = |s: f64| if s.is_nan() { f64::NEG_INFINITY } else { s };
        let mut best = 0;
        for (i, &s) in self.scores.iter().enumerate().skip(1) {
            if key(s) > key(self.scores[best]) {
                best = i;
            }
        }
        best
    }
}

impl Serialize for Output {
    /// `{"label": 3, "scores": [...]}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Output", 2)?;
        st.serialize_field("label", &self.label())?;
        st.serialize_field("scores", &self.scores)?;
        st.end()
    }
}
