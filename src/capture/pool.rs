//! Emptied buffers handed back between the threads of `scan --threads N` for reuse
//! ([`super::parallel`]): at most `max` are kept (past that a buffer is freed), so a pool holds
//! nothing beyond what was already in flight.

use std::sync::Mutex;

pub(crate) struct Pool<T> {
    items: Mutex<Vec<T>>,
    max: usize,
}

impl<T> Pool<T> {
    pub(crate) fn new(max: usize) -> Self {
        Pool {
            items: Mutex::new(Vec::with_capacity(max)),
            max,
        }
    }

    /// A buffer to fill, if one was given back (a poisoned lock just means none).
    pub(crate) fn take(&self) -> Option<T> {
        self.items.lock().ok()?.pop()
    }

    pub(crate) fn give(&self, t: T) {
        if let Ok(mut items) = self.items.lock() {
            if items.len() < self.max {
                items.push(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_cap() {
        let pool = Pool::new(2);
        for i in 0..5 {
            pool.give(i);
        }
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), Some(0));
        assert_eq!(pool.take(), None);
    }
}
