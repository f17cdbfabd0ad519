//! twofoldd as a library: every decision lives here, behind injected clock, randomness,
//! user database and audit sink, so tests drive it without a bus or a real clock.

pub mod audit;
pub mod audit_throttle;
pub mod authz;
pub mod bus;
pub mod clock;
pub mod credentials;
pub mod email_codes;
pub mod email_notices;
pub mod engine;
pub mod factor;
pub mod grace;
pub mod identity;
pub mod lockout;
pub mod mail;
pub mod manage;
pub mod model;
pub mod notify;
pub mod otp;
pub mod pacing;
pub mod peer;
pub mod push;
pub mod qr;
pub mod random;
pub mod recovery;
pub mod service;
pub mod sms;
pub mod socket;
pub mod store;
pub mod tls;
pub mod trust;
