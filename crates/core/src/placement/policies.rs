//! Placement policies: the FGD paper's baselines and linkwise's default.
