//! The isolation suite: see probes.rs.
