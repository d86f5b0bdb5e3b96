//! The agent limit as a semaphore: `limits.max_running_agents` permits, one taken before
//! a run's process starts and held by the run until its process group is gone.
//!
//! Interactive runs take a permit with [`Slots::try_acquire`] and are refused with
//! `LIMIT_REACHED` without one; the coordinator takes one under its own lock when it
//! assigns a task to an agent worker, and leaves the task queued without one. So the
//! limit cannot be overrun by concurrent starts, and the number of running agents is
//! derived from the permits in use rather than counted by hand.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The permits; cheap to clone, every clone shares them.
#[derive(Clone, Debug)]
pub struct Slots {
    semaphore: Arc<Semaphore>,
    max: usize,
}

/// The right to run one agent process; given back when dropped.
#[derive(Debug)]
pub struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

impl Slots {
    /// `max` permits.
    pub fn new(max: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A permit, if one is free now; never waits.
    pub fn try_acquire(&self) -> Option<Permit> {
        self.semaphore.clone().try_acquire_owned().ok().map(Permit)
    }

    /// Permits taken: the agent runs starting or running now.
    pub fn in_use(&self) -> usize {
        self.max.saturating_sub(self.semaphore.available_permits())
    }

    /// The configured maximum.
    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_bounded_and_returned_on_drop() {
        let slots = Slots::new(2);
        let a = slots.try_acquire().unwrap();
        let _b = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none());
        assert_eq!(slots.in_use(), 2);
        drop(a);
        assert_eq!(slots.in_use(), 1);
        assert!(slots.try_acquire().is_some());
    }
}
