//! Catalog bench (to be written).
fn main() {}
