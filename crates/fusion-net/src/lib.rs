//! # fusion-net: networking for Fusion's two parties
//!
//! QUIC+TLS connections with certificate pinning, bounded typed messages with
//! timeouts, per-phase byte metering and a user-space LAN/WAN link emulator.
//!
//! Work in progress: see issue 4.
