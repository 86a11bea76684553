//! `profile:NAME`: the built-in topologies of [`linkwise_core::profiles`] as a
//! [`TopologySource`].

use linkwise_core::Topology;
use linkwise_core::profiles::{self, ProfileError};

use crate::{Error, Result, TopologySource};

/// Every built-in profile: name and one-line description.
pub use linkwise_core::profiles::PROFILES;

/// A built-in profile.
#[derive(Debug, Clone)]
pub struct ProfileSource {
    name: String,
}

impl ProfileSource {
    /// The profile called `name`; an error lists the names that exist.
    pub fn new(name: &str) -> Result<Self> {
        if profiles::exists(name) {
            Ok(ProfileSource {
                name: name.to_string(),
            })
        } else {
            Err(Error::UnknownProfile {
                name: name.to_string(),
                known: profiles::known(),
            })
        }
    }
}

impl TopologySource for ProfileSource {
    fn discover(&self) -> Result<Topology> {
        profiles::get(&self.name).map_err(|e| match e {
            ProfileError::Unknown { name, known } => Error::UnknownProfile { name, known },
            ProfileError::Invalid { name, error } => Error::Model {
                origin: format!("profile:{name}"),
                error,
            },
        })
    }
}
