//! A Zipf sampler by inverse transform over the exact cumulative
//! distribution: rank `r` (0-based) is drawn with probability proportional
//! to `1 / (r + 1)^skew`.

use rand::Rng;

/// Ranks `0..keys`, rank 0 the most popular.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// let zipf = singleflight_replay::Zipf::new(1_000, 1.2);
/// let mut rng = StdRng::seed_from_u64(1);
/// let draws: Vec<u64> = (0..10_000).map(|_| zipf.sample(&mut rng)).collect();
/// assert!(draws.iter().all(|&k| k < 1_000));
/// // Rank 0 takes about 1/zeta(1.2) of 1,000 keys: a fifth of the draws.
/// assert!(draws.iter().filter(|&&k| k == 0).count() > 1_500);
/// ```
pub struct Zipf {
    /// `cdf[r]` = P(rank <= r); the last is 1.
    cdf: Vec<f64>,
}

impl std::fmt::Debug for Zipf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zipf")
            .field("keys", &self.cdf.len())
            .finish_non_exhaustive()
    }
}

impl Zipf {
    /// The distribution over `keys` ranks with exponent `skew` (0 is
    /// uniform).
    ///
    /// # Panics
    ///
    /// If `keys` is 0 or `skew` is negative or not finite (the generators
    /// check both first, see [`Workload::check`](crate::Workload::check)).
    pub fn new(keys: u64, skew: f64) -> Self {
        assert!(keys > 0, "Zipf over no keys");
        assert!(skew.is_finite() && skew >= 0.0, "Zipf skew {skew}");
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=keys)
            .map(|r| {
                total += (r as f64).powf(-skew);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        *cdf.last_mut().expect("keys > 0") = 1.0;
        Zipf { cdf }
    }

    /// One rank.
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1) as u64
    }
}
