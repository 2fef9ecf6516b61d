//! Which fault comes next, drawn from a seed so that a failing run can be
//! replayed exactly: the same seed and knobs give the same faults in the
//! same order with the same choices (which node, how long).
//!
//! Faults are dealt like cards: every enabled fault once per round, in a
//! shuffled order, so a run of a few rounds has survived every kind. The
//! rolling upgrade, which cannot be repeated, is the first fault of a run.

use std::time::Duration;

use super::fault::Fault;

/// SplitMix64: small, fast and fully determined by its seed, which is all a
/// fault schedule needs (no cryptographic strength).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// A duration in `[low, high]`, to the millisecond.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let (low_ms, high_ms) = (low.as_millis() as u64, high.as_millis() as u64);
        if high_ms <= low_ms {
            return low;
        }
        Duration::from_millis(low_ms + self.next_u64() % (high_ms - low_ms + 1))
    }
}

/// The faults of a run, dealt from a seed.
#[derive(Debug, Clone)]
pub struct Schedule {
    rng: Rng,
    deck: Vec<Fault>,
    /// What is left of the current round, dealt from the end.
    round: Vec<Fault>,
    upgrade_pending: bool,
}

impl Schedule {
    /// `faults` are the enabled kinds (duplicates ignored).
    pub fn new(seed: u64, faults: &[Fault]) -> Self {
        let mut deck: Vec<Fault> = faults.iter().copied().filter(|f| !f.once_only()).collect();
        deck.sort();
        deck.dedup();
        Self {
            rng: Rng::new(seed),
            deck,
            round: Vec::new(),
            upgrade_pending: faults.iter().any(|f| f.once_only()),
        }
    }

    /// The randomness for the fault's own choices (which node, how long),
    /// drawn from the same seed.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The next fault; `None` when nothing is enabled (or only the upgrade,
    /// once it was dealt).
    pub fn next_fault(&mut self) -> Option<Fault> {
        if self.upgrade_pending {
            self.upgrade_pending = false;
            return Some(Fault::RollingUpgrade);
        }
        if self.round.is_empty() {
            self.round = self.deck.clone();
            // Fisher-Yates.
            for i in (1..self.round.len()).rev() {
                let j = self.rng.below(i + 1);
                self.round.swap(i, j);
            }
        }
        self.round.pop()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn dealt(seed: u64, faults: &[Fault], count: usize) -> Vec<Fault> {
        let mut schedule = Schedule::new(seed, faults);
        (0..count).map_while(|_| schedule.next_fault()).collect()
    }

    #[test]
    fn the_same_seed_deals_the_same_faults() {
        let faults = [Fault::KillLeader, Fault::Freeze, Fault::KillAndWipeAll];
        assert_eq!(dealt(7, &faults, 30), dealt(7, &faults, 30));
        assert_ne!(dealt(7, &faults, 30), dealt(8, &faults, 30));
    }

    #[test]
    fn every_round_deals_each_enabled_fault_once() {
        let faults = [
            Fault::KillLeader,
            Fault::Freeze,
            Fault::AwsErrors,
            Fault::KillAll,
        ];
        let faults_dealt = dealt(42, &faults, 8);
        for round in faults_dealt.chunks(4) {
            let kinds: BTreeSet<Fault> = round.iter().copied().collect();
            assert_eq!(kinds, faults.iter().copied().collect());
        }
    }

    #[test]
    fn the_upgrade_comes_first_and_only_once() {
        let faults = dealt(3, &[Fault::RollingUpgrade, Fault::KillLeader], 5);
        assert_eq!(faults[0], Fault::RollingUpgrade);
        assert!(faults[1..].iter().all(|f| *f == Fault::KillLeader));
        assert_eq!(
            dealt(3, &[Fault::RollingUpgrade], 5),
            vec![Fault::RollingUpgrade]
        );
    }

    #[test]
    fn nothing_enabled_deals_nothing() {
        assert_eq!(dealt(1, &[], 3), vec![]);
    }

    #[test]
    fn choices_stay_in_their_bounds() {
        let mut rng = Rng::new(11);
        for _ in 0..1000 {
            assert!(rng.below(3) < 3);
            let d = rng.between(Duration::from_secs(2), Duration::from_secs(5));
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(5));
        }
        assert_eq!(rng.below(0), 0);
    }
}
