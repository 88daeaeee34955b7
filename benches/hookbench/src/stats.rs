//! Samples and the order statistics the report uses (median and p95, nearest rank).

/// One measured hook run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall_us: f64,
    /// User + system CPU time of the hook and its tool processes.
    pub cpu_us: f64,
    pub rss_kb: u64,
    pub calls: u32,
}

/// The `q` quantile (0..=1) of `values` by nearest rank; `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

pub fn p95(values: &[f64]) -> Option<f64> {
    quantile(values, 0.95)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p95_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(median(&v), Some(50.5));
        assert_eq!(p95(&v), Some(95.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(p95(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }
}
