//! Built-in profiles.

use linkwise_core::Topology;

use crate::{Error, Result, TopologySource};

/// A built-in profile.
#[derive(Debug, Clone)]
pub struct ProfileSource {
    name: String,
}

impl ProfileSource {
    /// The profile called `name`.
    pub fn new(name: &str) -> Result<Self> {
        Err(Error::UnknownProfile { name: name.to_string(), known: String::new() })
    }
}

impl TopologySource for ProfileSource {
    fn discover(&self) -> Result<Topology> {
        Err(Error::UnknownProfile { name: self.name.clone(), known: String::new() })
    }
}
