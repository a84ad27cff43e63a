//! A small seeded random number generator (SplitMix64). Every iteration and connection derives
//! its own generator from the run's seed, so `--seed S --start-iteration N` regenerates the
//! exact bytes of iteration N whatever ran before it or alongside it.

/// SplitMix64: fast, good enough for fuzzing, and no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for one part of the run (`iteration`, `stream`) of the run `seed`.
    pub fn derive(seed: u64, iteration: u64, stream: u64) -> Rng {
        let mut mix = Rng::new(seed ^ iteration.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let a = mix.next_u64();
        Rng(a ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_streams_repeat_and_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::derive(7, 3, 1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::derive(7, 3, 1).next_u64(),
            Rng::derive(7, 3, 2).next_u64()
        );
        assert_ne!(
            Rng::derive(7, 3, 1).next_u64(),
            Rng::derive(7, 4, 1).next_u64()
        );
    }

    #[test]
    fn ranges_hold() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            assert!(rng.below(3) < 3);
            let n = rng.between(5, 7);
            assert!((5..=7).contains(&n));
        }
    }
}
