//! The policies and sequences in force. `serve` reloads them on SIGHUP or when their files
//! change; each reader takes the whole set as it is at that moment ([`InForce::get`]) and
//! keeps it for what it does, so that a flight in progress runs to its end on the sequences it
//! started with while the next one uses the new files.

use std::sync::{Arc, RwLock};

use crate::config::policy::Policy;
use crate::sequence::Sequences;

/// Every policy and the sequences they name, loaded together and sound together.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub policies: Vec<Policy>,
    pub sequences: Sequences,
}

impl Rules {
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }
}

/// A value that is replaced whole: readers get the one in force when they ask, and a
/// replacement never changes what a reader already holds.
#[derive(Debug, Default)]
pub struct InForce<T> {
    current: RwLock<Arc<T>>,
}

impl<T> InForce<T> {
    pub fn new(value: T) -> InForce<T> {
        InForce {
            current: RwLock::new(Arc::new(value)),
        }
    }

    pub fn get(&self) -> Arc<T> {
        // A writer that panicked left a whole value behind (the swap is one assignment).
        match self.current.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, value: T) {
        let value = Arc::new(value);
        match self.current.write() {
            Ok(mut v) => *v = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_what_it_took() {
        let rules = InForce::new(1);
        let before = rules.get();
        rules.replace(2);
        assert_eq!((*before, *rules.get()), (1, 2));
    }
}
