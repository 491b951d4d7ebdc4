//! databricks-account-operator: a Kubernetes operator for the Databricks account-level objects that
//! AWS workspaces need (credentials, storage configurations, customer-managed keys, networks,
//! PrivateLink endpoints, private access settings and workspaces).
//!
//! Modules:
//! - [`databricks`]: the Account API client (models, auth, errors, retries). No Kubernetes types.
//! - [`sim`]: a local simulator of the Account API, used by the tests and the demo.

pub mod bounds;
pub mod controller;
pub mod crd;
pub mod databricks;
pub mod http;
pub mod metrics;
pub mod sim;
