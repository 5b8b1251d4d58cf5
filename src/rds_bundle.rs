//! The AWS RDS CA bundle (to be written).
