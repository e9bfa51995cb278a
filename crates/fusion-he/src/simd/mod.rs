//! SIMD placeholder
pub mod encoder;
pub mod params;

pub use encoder::BatchEncoder;
pub use params::{SimdNoise, SimdParams, SimdParamsBuilder, SimdPreset};
