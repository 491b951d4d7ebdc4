//! The Databricks Account API client for the AWS provisioning objects (`account-api.md`).
//!
//! No Kubernetes types here: this crate knows only the API. [`AccountClient`] handles the rate
//! limit, authentication (OAuth M2M, token federation, basic), retries of transient failures and
//! the parsing of every error body shape.

pub mod auth;
pub mod bounds;
pub mod client;
pub mod config;
pub mod error;
pub mod models;
pub mod ratelimit;
pub mod resolve;
pub mod workspace;

pub use auth::Credentials;
pub use client::{AccountClient, CallObserver, CallRecord, WriteGate};
pub use config::{AccountConfig, AllowedHosts};
pub use error::{ApiError, AuthError, ConfigError, Error};
pub use resolve::ResolveOverrides;
pub use secrecy::{ExposeSecret, SecretString};
pub use workspace::Unreachable;
