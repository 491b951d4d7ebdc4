//! Network connectivity configurations (NCCs) and their private endpoint rules
//! (account-api.md §11): `/network-connectivity-configs[/{id}[/private-endpoint-rules[/{rule}]]]`.
//!
//! What the simulator does that no source confirms is marked **[inferred]** below:
//! - the NCC's `egress_config.target_rules.aws_private_endpoint_rules` mirrors its rules (the SDK
//!   model has the field; whether the server fills it is unconfirmed);
//! - a rule to S3 (`resource_names`) becomes `ESTABLISHED` by itself; one to an NLB endpoint
//!   service stays `PENDING` (approval happens on the customer's AWS side, which the simulator has
//!   no hook for yet);
//! - the refusals of an NCC delete are 400 `INVALID_STATE`, as for networks;
//! - a same-region mismatch on a workspace binding is 400 `INVALID_PARAMETER_VALUE` with our wording.

use serde_json::{Map, Value, json};

use super::{ApiError, Store, new_uuid, opt_str, str_list};

/// Objects per page of the two NCC lists: small, so that clients must follow `next_page_token`.
pub const NCC_PAGE_SIZE: usize = 2;
/// NCCs per region per account (account-api.md §11.6).
const MAX_NCCS_PER_REGION: usize = 10;
/// Workspaces per NCC (§11.6).
const MAX_WORKSPACES_PER_NCC: usize = 50;
/// Domain names per rule (§11.6).
const MAX_DOMAIN_NAMES: usize = 10;
/// Stable egress CIDR blocks every simulated NCC reports (documentation ranges, RFC 5737).
const CIDR_BLOCKS: [&str; 2] = ["192.0.2.0/28", "198.51.100.0/28"];

#[derive(Debug, Clone)]
pub(super) struct RuleRec {
    body: Map<String, Value>,
    created: u64,
    s3: bool,
    /// When a DELETE deactivated it; purged after the deletion time.
    deactivated_at: Option<u64>,
}

impl RuleRec {
    fn wire(&self) -> Value {
        Value::Object(self.body.clone())
    }
    fn id(&self) -> &str {
        self.body
            .get("rule_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn state(&self) -> &str {
        self.body
            .get("connection_state")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub(super) struct NccRec {
    body: Map<String, Value>,
    rules: Vec<RuleRec>,
}

impl NccRec {
    fn id(&self) -> &str {
        self.body
            .get("network_connectivity_config_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn region(&self) -> &str {
        self.body
            .get("region")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    /// The NCC as GET and list answer it, its rules mirrored under `egress_config` **[inferred]**.
    pub(super) fn wire(&self) -> Value {
        let mut body = self.body.clone();
        body.insert(
            "egress_config".into(),
            json!({
                "default_rules": {"aws_stable_ip_rule": {"cidr_blocks": CIDR_BLOCKS}},
                "target_rules": {
                    "aws_private_endpoint_rules":
                        self.rules.iter().map(RuleRec::wire).collect::<Vec<_>>(),
                },
            }),
        );
        Value::Object(body)
    }
}

/// One page of `items` from `page_token` (an offset; anything else starts over).
fn page(items: Vec<Value>, page_token: Option<&str>) -> Value {
    let start = page_token
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (start + NCC_PAGE_SIZE).min(items.len());
    let slice: Vec<Value> = items
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut out = json!({"items": slice});
    if end < items.len() {
        out["next_page_token"] = json!(end.to_string());
    }
    out
}

/// The route template of a path below `/network-connectivity-configs` (its segments after that),
/// or `None` for a path the API does not have.
pub fn ncc_route(rest: &[String]) -> Option<&'static str> {
    match rest {
        [] => Some("/network-connectivity-configs"),
        [_] => Some("/network-connectivity-configs/{id}"),
        [_, r] if r == "private-endpoint-rules" => {
            Some("/network-connectivity-configs/{id}/private-endpoint-rules")
        }
        [_, r, _] if r == "private-endpoint-rules" => {
            Some("/network-connectivity-configs/{id}/private-endpoint-rules/{rule_id}")
        }
        _ => None,
    }
}

fn valid_name(name: &str) -> bool {
    (3..=30).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Store {
    /// Serves one request below `/network-connectivity-configs` (`rest`: the segments after it);
    /// `None` when the method is not served there.
    pub fn ncc_request(
        &mut self,
        method: &str,
        rest: &[String],
        body: Option<&Value>,
        page_token: Option<&str>,
        now: u64,
    ) -> Option<Result<Value, ApiError>> {
        let empty = json!({});
        let body = body.unwrap_or(&empty);
        Some(match (method, rest) {
            ("GET", []) => Ok(self.list_nccs(page_token)),
            ("POST", []) => self.create_ncc(body, now),
            ("GET", [id]) => self.get_ncc(id),
            ("DELETE", [id]) => self.delete_ncc(id),
            ("GET", [id, _]) => self.list_rules(id, page_token),
            ("POST", [id, _]) => self.create_rule(id, body, now),
            ("GET", [id, _, rule]) => self.get_rule(id, rule),
            ("DELETE", [id, _, rule]) => self.delete_rule(id, rule, now),
            _ => return None,
        })
    }

    /// Time-driven rule transitions: `CREATING` → `ESTABLISHED` (S3) or `PENDING` (NLB) after the
    /// endpoint pending time; deactivated rules are purged after the deletion time.
    pub(super) fn tick_nccs(&mut self, now: u64) {
        let pending = self.config.endpoint_pending_ms;
        let purge = self.config.deletion_ms;
        for ncc in &mut self.nccs {
            ncc.rules
                .retain(|r| r.deactivated_at.is_none_or(|t| now < t + purge));
            for r in &mut ncc.rules {
                if r.state() == "CREATING" && now >= r.created + pending {
                    let state = if r.s3 { "ESTABLISHED" } else { "PENDING" };
                    r.body.insert("connection_state".into(), json!(state));
                    if r.s3 {
                        let hex: String = new_uuid().replace('-', "").chars().take(17).collect();
                        r.body
                            .insert("vpc_endpoint_id".into(), json!(format!("vpce-{hex}")));
                    }
                    r.body.insert("updated_time".into(), json!(now));
                }
            }
        }
    }

    fn ncc_idx(&self, id: &str) -> Result<usize, ApiError> {
        self.nccs.iter().position(|n| n.id() == id).ok_or_else(|| {
            ApiError::not_found(format!("Network Connectivity Config {id} does not exist."))
        })
    }

    /// Workspace `workspace` (`None` for a new one) in `region` may use NCC `id`: it exists, is
    /// in the same region and has room for one more workspace.
    pub(super) fn check_ncc(
        &self,
        id: &str,
        region: &str,
        workspace: Option<i64>,
    ) -> Result<(), ApiError> {
        let ncc = &self.nccs[self.ncc_idx(id)?];
        if ncc.region() != region {
            return Err(ApiError::invalid(format!(
                "Network Connectivity Config {id} is in region {}, but the workspace is in region {region}; only workspaces in the same region can be attached",
                ncc.region()
            )));
        }
        let users = self
            .workspaces
            .iter()
            .filter(|w| {
                w.str_field("network_connectivity_config_id") == Some(id)
                    && Some(w.id()) != workspace
            })
            .count();
        if users >= MAX_WORKSPACES_PER_NCC {
            return Err(ApiError::invalid(format!(
                "Network Connectivity Config {id} already serves {MAX_WORKSPACES_PER_NCC} workspaces"
            )));
        }
        Ok(())
    }

    /// `GET /network-connectivity-configs`: one page.
    pub fn list_nccs(&self, page_token: Option<&str>) -> Value {
        page(self.nccs.iter().map(NccRec::wire).collect(), page_token)
    }

    /// `GET /network-connectivity-configs/{id}`.
    pub fn get_ncc(&self, id: &str) -> Result<Value, ApiError> {
        Ok(self.nccs[self.ncc_idx(id)?].wire())
    }

    /// `POST /network-connectivity-configs`: `{name, region}`, both required.
    pub fn create_ncc(&mut self, body: &Value, now: u64) -> Result<Value, ApiError> {
        let body = super::as_object(body)?;
        let name = opt_str(body, "name")?.unwrap_or_default();
        if !valid_name(name) {
            return Err(ApiError::invalid(format!(
                "Invalid name {name:?}: must match ^[0-9a-zA-Z-_]{{3,30}}$"
            )));
        }
        let region = opt_str(body, "region")?.unwrap_or_default();
        self.check_region(region)?;
        if self.nccs.iter().filter(|n| n.region() == region).count() >= MAX_NCCS_PER_REGION {
            return Err(ApiError::invalid(format!(
                "The account already has {MAX_NCCS_PER_REGION} network connectivity configurations in region {region}"
            )));
        }
        let mut obj = Map::new();
        obj.insert("network_connectivity_config_id".into(), json!(new_uuid()));
        obj.insert("account_id".into(), json!(self.config.account_id));
        obj.insert("name".into(), json!(name));
        obj.insert("region".into(), json!(region));
        obj.insert("creation_time".into(), json!(now));
        obj.insert("updated_time".into(), json!(now));
        let rec = NccRec {
            body: obj,
            rules: Vec::new(),
        };
        let wire = rec.wire();
        self.nccs.push(rec);
        Ok(wire)
    }

    /// `DELETE /network-connectivity-configs/{id}`: refused while it has rules (deactivated ones
    /// included **[inferred]**) or a workspace uses it; the answer has no body the SDKs read.
    pub fn delete_ncc(&mut self, id: &str) -> Result<Value, ApiError> {
        let idx = self.ncc_idx(id)?;
        if !self.nccs[idx].rules.is_empty() {
            return Err(ApiError::invalid_state(format!(
                "Network Connectivity Config {id} is unable to be deleted because it has one or more private endpoint rules."
            )));
        }
        let users: Vec<String> = self
            .workspaces
            .iter()
            .filter(|w| w.str_field("network_connectivity_config_id") == Some(id))
            .map(|w| w.id().to_string())
            .collect();
        if !users.is_empty() {
            return Err(ApiError::invalid_state(format!(
                "Network Connectivity Config {id} is unable to be deleted because it is attached to one or more workspaces: {}",
                users.join(", ")
            )));
        }
        self.nccs.remove(idx);
        Ok(json!({}))
    }

    /// `GET .../private-endpoint-rules`: one page.
    pub fn list_rules(&self, ncc: &str, page_token: Option<&str>) -> Result<Value, ApiError> {
        let n = &self.nccs[self.ncc_idx(ncc)?];
        Ok(page(
            n.rules.iter().map(RuleRec::wire).collect(),
            page_token,
        ))
    }

    /// `GET .../private-endpoint-rules/{rule}`.
    pub fn get_rule(&self, ncc: &str, rule: &str) -> Result<Value, ApiError> {
        let n = &self.nccs[self.ncc_idx(ncc)?];
        n.rules
            .iter()
            .find(|r| r.id() == rule)
            .map(RuleRec::wire)
            .ok_or_else(|| {
                ApiError::not_found(format!("Private endpoint rule {rule} does not exist."))
            })
    }

    /// `POST .../private-endpoint-rules`: an S3 rule names `resource_names` (buckets), an NLB one
    /// `endpoint_service` (`com.amazonaws.vpce.<region>.vpce-svc-…`) and optionally
    /// `domain_names`; the two are exclusive, as Terraform enforces.
    pub fn create_rule(&mut self, ncc: &str, body: &Value, now: u64) -> Result<Value, ApiError> {
        let idx = self.ncc_idx(ncc)?;
        let body = super::as_object(body)?;
        let region = self.nccs[idx].region().to_string();
        let service = opt_str(body, "endpoint_service")?.map(str::to_string);
        let domains = str_list(body, "domain_names")?;
        let resources = str_list(body, "resource_names")?;
        if !resources.is_empty() && !domains.is_empty() {
            return Err(ApiError::invalid(
                "resource_names and domain_names cannot both be set",
            ));
        }
        if domains.len() > MAX_DOMAIN_NAMES {
            return Err(ApiError::invalid(format!(
                "A private endpoint rule can have at most {MAX_DOMAIN_NAMES} domain names"
            )));
        }
        let s3 = !resources.is_empty();
        let service = match (service, s3) {
            (Some(s), _) => s,
            // [inferred] The server fills in the S3 service of the NCC's region.
            (None, true) => format!("com.amazonaws.{region}.s3"),
            (None, false) => {
                return Err(ApiError::invalid(
                    "endpoint_service is required unless resource_names names S3 buckets",
                ));
            }
        };
        let nlb_prefix = format!("com.amazonaws.vpce.{region}.vpce-svc-");
        let s3_service = format!("com.amazonaws.{region}.s3");
        if service != s3_service && !service.starts_with(&nlb_prefix) {
            return Err(ApiError::invalid(format!(
                "Invalid endpoint_service {service}: expected {nlb_prefix}… or {s3_service} in the NCC's region"
            )));
        }
        let mut obj = Map::new();
        obj.insert("rule_id".into(), json!(new_uuid()));
        obj.insert("network_connectivity_config_id".into(), json!(ncc));
        obj.insert("account_id".into(), json!(self.config.account_id));
        obj.insert("endpoint_service".into(), json!(service));
        if !domains.is_empty() {
            obj.insert("domain_names".into(), json!(domains));
        }
        if s3 {
            obj.insert("resource_names".into(), json!(resources));
            obj.insert("enabled".into(), json!(true));
        }
        obj.insert("connection_state".into(), json!("CREATING"));
        obj.insert("creation_time".into(), json!(now));
        obj.insert("updated_time".into(), json!(now));
        let rec = RuleRec {
            body: obj,
            created: now,
            s3: s3 || service == s3_service,
            deactivated_at: None,
        };
        let wire = rec.wire();
        self.nccs[idx].rules.push(rec);
        Ok(wire)
    }

    /// `DELETE .../private-endpoint-rules/{rule}`: a `PENDING` or `EXPIRED` rule goes at once;
    /// any other is deactivated and purged later (the SDK says after a day; here after the
    /// deletion time). Answers with the rule.
    pub fn delete_rule(&mut self, ncc: &str, rule: &str, now: u64) -> Result<Value, ApiError> {
        let idx = self.ncc_idx(ncc)?;
        let rules = &mut self.nccs[idx].rules;
        let pos = rules.iter().position(|r| r.id() == rule).ok_or_else(|| {
            ApiError::not_found(format!("Private endpoint rule {rule} does not exist."))
        })?;
        if matches!(rules[pos].state(), "PENDING" | "EXPIRED") {
            return Ok(rules.remove(pos).wire());
        }
        let r = &mut rules[pos];
        if r.deactivated_at.is_none() {
            r.deactivated_at = Some(now);
            r.body.insert("deactivated".into(), json!(true));
            r.body.insert("deactivated_at".into(), json!(now));
        }
        Ok(r.wire())
    }
}

#[cfg(test)]
mod tests {
    use super::super::StoreConfig;
    use super::*;

    fn store() -> Store {
        Store::new(StoreConfig {
            account_id: "acct".into(),
            deployment_prefix: None,
            provisioning_ms: 1000,
            deletion_ms: 500,
            endpoint_pending_ms: 200,
            in_use_linger_ms: 0,
            tags_apply_ms: 0,
            regions: super::super::default_regions(),
            no_cmk_regions: Vec::new(),
            relay_endpoints: Vec::new(),
            quotas: None,
        })
    }

    fn id(v: &Value) -> String {
        v["network_connectivity_config_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Lists come in pages of two with a token to the next; the last page has none.
    #[test]
    fn ncc_lists_are_paginated() {
        let mut s = store();
        for i in 0..3 {
            s.create_ncc(
                &json!({"name": format!("ncc-{i}"), "region": "us-east-1"}),
                0,
            )
            .unwrap();
        }
        let first = s.list_nccs(None);
        assert_eq!(first["items"].as_array().unwrap().len(), 2);
        let token = first["next_page_token"].as_str().unwrap().to_string();
        let last = s.list_nccs(Some(&token));
        assert_eq!(last["items"][0]["name"], "ncc-2");
        assert!(last.get("next_page_token").is_none(), "{last}");
    }

    /// A workspace binds only an NCC of its region; a bound NCC, or one with rules, cannot be
    /// deleted, and says why; an S3 rule is established after the pending time.
    #[test]
    fn bindings_are_same_region_and_block_the_delete() {
        let mut s = store();
        let ncc = id(&s
            .create_ncc(&json!({"name": "ncc", "region": "eu-west-3"}), 0)
            .unwrap());
        let err = s
            .create_workspace(&json!({"workspace_name": "w", "aws_region": "us-east-1", "compute_mode": "SERVERLESS", "network_connectivity_config_id": ncc}), 0)
            .unwrap_err();
        assert!(
            err.message.contains("only workspaces in the same region"),
            "{err}"
        );
        let ws = s
            .create_workspace(&json!({"workspace_name": "w", "aws_region": "eu-west-3", "compute_mode": "SERVERLESS", "network_connectivity_config_id": ncc}), 0)
            .unwrap();
        let rule = s
            .create_rule(&ncc, &json!({"resource_names": ["bucket"]}), 0)
            .unwrap();
        assert_eq!(rule["endpoint_service"], "com.amazonaws.eu-west-3.s3");
        s.tick(300);
        let ncc_now = s.get_ncc(&ncc).unwrap();
        let rules = &ncc_now["egress_config"]["target_rules"]["aws_private_endpoint_rules"];
        assert_eq!(rules[0]["connection_state"], "ESTABLISHED");
        let err = s.delete_ncc(&ncc).unwrap_err();
        assert!(
            err.message
                .contains("has one or more private endpoint rules"),
            "{err}"
        );
        let rule_id = rule["rule_id"].as_str().unwrap();
        assert_eq!(
            s.delete_rule(&ncc, rule_id, 300).unwrap()["deactivated"],
            true
        );
        s.tick(900);
        let err = s.delete_ncc(&ncc).unwrap_err();
        let ws_id = ws["workspace_id"].as_i64().unwrap();
        assert_eq!(err.code, "INVALID_STATE");
        assert!(
            err.message
                .contains(&format!("attached to one or more workspaces: {ws_id}")),
            "{err}"
        );
        let err = s
            .create_rule(
                &ncc,
                &json!({"endpoint_service": "com.amazonaws.vpce.us-east-1.vpce-svc-1"}),
                0,
            )
            .unwrap_err();
        assert!(err.message.contains("in the NCC's region"), "{err}");
    }
}
