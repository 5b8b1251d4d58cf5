//! Catalog tests (to be written).
