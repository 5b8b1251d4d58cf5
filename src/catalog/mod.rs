//! The LTM catalog (to be written).
