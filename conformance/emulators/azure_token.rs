//! Token endpoint emulator (to be written).
