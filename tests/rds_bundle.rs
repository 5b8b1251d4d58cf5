//! RDS bundle tests (to be written).
