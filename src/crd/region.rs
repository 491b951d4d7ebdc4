//! AWS regions where Databricks workspaces can run.
//!
//! A region is checked by its shape, not against a closed list: Databricks adds regions faster
//! than the operator is released, and the Account API itself refuses a region the account cannot
//! use (reported as `ApiRejected` with the API's message). The regions known when this was written
//! are listed in [`KNOWN_REGIONS`] and in the fields' documentation, so `kubectl explain` shows them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The shape of an AWS region name: `us-east-1`, `ap-southeast-3`, `us-gov-west-1`.
pub const REGION_PATTERN: &str = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$";

/// The AWS regions Databricks lists as supported for workspaces (docs.databricks.com,
/// "Databricks clouds and regions"), as of this release. Kept in step with the field documentation
/// by a unit test.
pub const KNOWN_REGIONS: &[&str] = &[
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ca-central-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "us-gov-west-1",
];

/// An AWS region name, such as `us-east-1`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(transparent)]
pub struct AwsRegion(#[schemars(regex(pattern = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"))] String);

impl AwsRegion {
    /// The region's name, e.g. `us-east-1`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for AwsRegion {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema users see refuses what is not a region name, and the list in `kubectl explain`
    /// is the list the code knows (a new region is added in one place and the test says where else).
    #[test]
    fn region_fields_carry_the_pattern_and_the_known_list() {
        use kube::CustomResourceExt;
        let crds = [
            (
                serde_json::to_value(crate::crd::DatabricksWorkspace::crd()).unwrap_or_default(),
                "awsRegion",
            ),
            (
                serde_json::to_value(crate::crd::DatabricksVpcEndpoint::crd()).unwrap_or_default(),
                "region",
            ),
            (
                serde_json::to_value(crate::crd::DatabricksPrivateAccessSettings::crd())
                    .unwrap_or_default(),
                "region",
            ),
            (
                serde_json::to_value(crate::crd::DatabricksNetworkConnectivityConfig::crd())
                    .unwrap_or_default(),
                "region",
            ),
        ];
        for (crd, field) in crds {
            let prop = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
                ["properties"][field];
            assert_eq!(prop["pattern"], REGION_PATTERN, "{field}: {prop}");
            assert_eq!(prop["type"], "string");
            let doc = prop["description"].as_str().unwrap_or_default();
            for r in KNOWN_REGIONS {
                assert!(
                    doc.contains(&format!("`{r}`")),
                    "{field} doc lacks {r}: {doc}"
                );
            }
        }
    }
}
