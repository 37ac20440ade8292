//! Which attempts to generate next: rounds over the documents that still need one.

/// Attempts so far of one document.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SlotState {
    pub attempts: u32,
    pub valid: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// G: trajectories kept per document (so at least G attempts are made).
    pub keep: u32,
    pub max_attempts: u32,
    pub per_round: u32,
}

impl SlotState {
    /// A document is open until it has a valid task and at least G attempts, or has used
    /// its `max_attempts`.
    pub fn is_open(&self, l: &Limits) -> bool {
        self.attempts < l.max_attempts && (self.valid == 0 || self.attempts < l.keep)
    }

    /// Attempts to make for this document in the next round.
    pub fn next_round(&self, l: &Limits) -> u32 {
        if !self.is_open(l) {
            return 0;
        }
        let room = l.max_attempts - self.attempts;
        let need =
            if self.valid == 0 { l.per_round } else { (l.keep - self.attempts).min(l.per_round) };
        need.max(1).min(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_a_valid_task_with_g_attempts_or_the_budget() {
        let l = Limits { keep: 4, max_attempts: 10, per_round: 3 };
        let mut s = SlotState::default();
        assert_eq!(s.next_round(&l), 3);
        s = SlotState { attempts: 3, valid: 1 };
        assert_eq!(s.next_round(&l), 1, "only up to G once a valid task exists");
        s = SlotState { attempts: 4, valid: 1 };
        assert!(!s.is_open(&l));
        s = SlotState { attempts: 9, valid: 0 };
        assert_eq!(s.next_round(&l), 1, "never past the budget");
        s = SlotState { attempts: 10, valid: 0 };
        assert_eq!(s.next_round(&l), 0);
    }
}
