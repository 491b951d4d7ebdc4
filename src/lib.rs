//! databricks-account-operator: a Kubernetes operator for the Databricks account-level objects that
//! AWS workspaces need (credentials, storage configurations, customer-managed keys, networks,
//! PrivateLink endpoints, private access settings and workspaces).
//!
//! Modules:
//! - [`databricks`]: the Account API client (models, auth, errors, retries). No Kubernetes types.
//!   It is the crate `databricks-account-api` (`src/databricks/`), re-exported here with
//!   [`bounds`] so that the operator's modules keep their paths.
//!
//! The local simulator of the Account API, used by the tests, the benchmark and the demo, is the
//! crate `databricks-account-sim` (`src/sim/`, binary `databricks-account-sim`): a dev-dependency
//! only, so it is not part of the operator's binary.

pub use databricks_account_api as databricks;
pub use databricks_account_api::bounds;

pub mod controller;
pub mod crd;
pub mod export;
pub mod http;
pub mod intern;
pub mod metrics;
