//! Catalog over every provider preset (to be written).
