//! The token cache (to be written).
